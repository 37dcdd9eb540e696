//! The weights being trained as an inference model (codeplan-model's runtime), for sampling
//! and judging during training.

use std::collections::BTreeMap;

use candle_core::Tensor;
use codeplan_model::chat::ChatTemplate;
use codeplan_model::model::Model;
use codeplan_model::tokenizer::Tokenizer;
use codeplan_model::weights::WeightSource;
use codeplan_model::Decoder;

use crate::error::Result;
use crate::model::TrainableModel;

/// Every weight of the model under its Hugging Face name, LoRA updates merged into the base
/// (`W + B·A·α/r`); the plan head is left out (inference never uses it), and so is
/// `lm_head.weight` when the head is tied to the embeddings.
pub fn merged_weights(model: &TrainableModel) -> Result<BTreeMap<String, Tensor>> {
    let mut out = BTreeMap::new();
    out.insert(
        "model.embed_tokens.weight".to_owned(),
        model.embed.tensor().detach(),
    );
    for (i, l) in model.layers.iter().enumerate() {
        let p = format!("model.layers.{i}");
        out.insert(
            format!("{p}.input_layernorm.weight"),
            l.attn_norm.tensor().detach(),
        );
        out.insert(
            format!("{p}.post_attention_layernorm.weight"),
            l.ffn_norm.tensor().detach(),
        );
        for proj in l.projections() {
            let mut w = proj.weight.tensor().detach();
            if let Some(a) = &proj.adapter {
                w = (w + a.delta()?.detach())?;
            }
            out.insert(format!("{}.weight", proj.name), w);
            if let Some(b) = &proj.bias {
                out.insert(format!("{}.bias", proj.name), b.tensor().detach());
            }
        }
    }
    out.insert("model.norm.weight".to_owned(), model.norm.tensor().detach());
    if let Some(h) = &model.head {
        out.insert("lm_head.weight".to_owned(), h.tensor().detach());
    }
    Ok(out)
}

/// The current weights as a runnable model (f32), with the student's tokenizer and template.
pub fn inference_model(
    model: &TrainableModel,
    name: &str,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
) -> Result<Model> {
    let mut source = WeightSource::Tensors {
        label: format!("{name} (weights in training)").into(),
        tensors: merged_weights(model)?,
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
