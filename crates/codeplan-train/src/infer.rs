//! The weights being trained as an inference model (codeplan-model's runtime), for sampling
//! and judging during training.

use codeplan_model::chat::ChatTemplate;
use codeplan_model::model::Model;
use codeplan_model::tokenizer::Tokenizer;
use codeplan_model::weights::WeightSource;
use codeplan_model::Decoder;

use crate::error::Result;
use crate::model::TrainableModel;

/// The current weights as a runnable model (f32), with the student's tokenizer and template.
pub fn inference_model(
    model: &TrainableModel,
    name: &str,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
) -> Result<Model> {
    let mut source = WeightSource::Tensors {
        label: format!("{name} (weights in training)").into(),
        tensors: crate::export::merged_weights(model)?,
    };
    let decoder = Decoder::load(&mut source, model.config().clone())?;
    Ok(Model::from_parts(
        name,
        std::path::Path::new(name),
        decoder,
        tokenizer,
        template,
    ))
}
