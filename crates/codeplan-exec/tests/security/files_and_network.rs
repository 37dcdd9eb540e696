//! Attacks on files and the network: /dev/shm, writes outside scratch, secrets, TCP.

use super::*;

/// Filling /dev/shm. The mount namespace puts a private 8 MiB tmpfs there and Landlock grants
/// no write outside the scratch: the write fails, and the host's /dev/shm is untouched.
#[test]
fn dev_shm_cannot_be_filled() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let m = marker("shm");
    let file = PathBuf::from(format!("/dev/shm/{m}"));
    let fill = format!(
        "import io\nblock = b'x' * (1 << 20)\nwith io.open({:?}, 'wb') as f:\n    for _ in range(1024):\n        f.write(block)\n",
        file.display().to_string()
    );
    let shm = format!(
        "from multiprocessing import shared_memory\ns = shared_memory.SharedMemory(name={m:?}, create=True, size=1 << 30)\ns.buf[:] = b'x' * len(s.buf)\nprint(42)\n"
    );
    let apps_fill = fill.clone();
    let v = common::judge(
        &pool,
        Strict,
        fast_limits(),
        vec![
            (add_problem("shm-file"), fill),
            (add_problem("shm-posix"), shm),
        ],
    );
    expect(
        &v[0],
        "write to /dev/shm",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    expect_stderr(
        &v[0],
        "write to /dev/shm",
        &["PermissionError", "No space left"],
    );
    expect(
        &v[1],
        "shm_open",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    expect_stderr(
        &v[1],
        "shm_open",
        &["PermissionError", "No space left", "Error"],
    );
    let v = common::judge(
        &pool,
        Apps,
        fast_limits(),
        vec![(add_problem("shm-apps"), apps_fill)],
    );
    expect(
        &v[0],
        "apps write to /dev/shm",
        SampleStatus::Failed,
        TestStatus::RuntimeError,
    );
    assert_not_written(&[file]);
    let leaked: Vec<_> = fs::read_dir("/dev/shm")
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains(&m))
        .map(|e| e.path())
        .collect();
    assert!(leaked.is_empty(), "host /dev/shm holds {leaked:?}");
    assert_nothing_left(&[&m], Duration::from_secs(3));
    assert_healthy(&pool);
}

// ------------------------------------------------------------------------------------------
// Filesystem and network
// ------------------------------------------------------------------------------------------

/// Writes to the project folder and to the host's /tmp. The root is read-only (mount
/// namespace), /tmp is a private tmpfs, and Landlock allows writes only beneath the scratch.
#[test]
fn writes_outside_scratch_are_refused() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let m = marker("write");
    let targets = escape_targets(&m);
    let mut items = Vec::new();
    for (i, t) in targets.iter().enumerate() {
        let code = format!(
            "import io\nwith io.open({:?}, 'w') as f:\n    f.write('pwned')\nprint(42)\n",
            t.display().to_string()
        );
        items.push((add_problem(&format!("write-{i}")), code));
    }
    // Through /proc/self/root and by creating a folder, too.
    let via_root = format!(
        "import io\nwith io.open('/proc/self/root' + {:?}, 'w') as f:\n    f.write('pwned')\nprint(42)\n",
        targets[0].display().to_string()
    );
    items.push((add_problem("write-proc-root"), via_root));
    let mkdir = format!(
        "import os\nos.makedirs({:?})\nprint(42)\n",
        format!("{}.d", targets[0].display())
    );
    items.push((add_problem("write-mkdir"), mkdir));
    let apps_items = items.clone();
    let v = common::judge(&pool, Strict, fast_limits(), items);
    for (i, v) in v.iter().enumerate() {
        expect(
            v,
            &format!("strict write #{i}"),
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        );
        expect_stderr(v, "write", &["PermissionError", "Read-only file system"]);
    }
    let v = common::judge(&pool, Apps, fast_limits(), apps_items);
    for (i, v) in v.iter().enumerate() {
        expect(
            v,
            &format!("apps write #{i}"),
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        );
    }
    let mut all = targets.clone();
    all.push(PathBuf::from(format!("{}.d", targets[0].display())));
    assert_not_written(&all);
    assert_nothing_left(&[&m], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// Reading secrets under /root and /home, and the project's own files. Landlock grants reads
/// only to system folders and the interpreter's prefix. Each program prints the secret, which
/// is also the expected output: it could only pass by reading it.
#[test]
fn secrets_under_root_and_home_are_unreadable() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let m = marker("secret");
    let secret = format!("SECRET-{m}");
    let home_dir = PathBuf::from(format!("/home/{m}"));
    let root_file = PathBuf::from(format!("/root/{m}.txt"));
    let home_file = home_dir.join("secret.txt");
    let project_file = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("{m}.txt"));
    let _planted = Planted(vec![
        root_file.clone(),
        home_dir.clone(),
        project_file.clone(),
    ]);
    fs::create_dir_all(&home_dir).expect("create a folder under /home");
    for f in [&root_file, &home_file, &project_file] {
        fs::write(f, &secret).expect("plant a secret");
    }
    let problem = |id: &str| common::stdio_problem(id, &[("\n", &format!("{secret}\n"))]);
    let mut items = Vec::new();
    for (i, f) in [&root_file, &home_file, &project_file].iter().enumerate() {
        let code = format!(
            "import io\nprint(io.open({:?}).read())\n",
            f.display().to_string()
        );
        items.push((problem(&format!("read-{i}")), code));
    }
    let listing = format!(
        "import io, os\nfor d in ('/root', '/home', {:?}):\n    for n in os.listdir(d):\n        if n.startswith('cpsec_secret'):\n            print(io.open(os.path.join(d, n)).read() if os.path.isfile(os.path.join(d, n)) else n)\n",
        env!("CARGO_MANIFEST_DIR")
    );
    items.push((problem("read-listdir"), listing));
    let apps_items = items.clone();
    let v = common::judge(&pool, Strict, fast_limits(), items);
    for (i, v) in v.iter().enumerate() {
        expect(
            v,
            &format!("strict read #{i}"),
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        );
        expect_stderr(v, "read", &["PermissionError"]);
    }
    let v = common::judge(&pool, Apps, fast_limits(), apps_items);
    for (i, v) in v.iter().enumerate() {
        // (`io.open`: under apps the builtin `open` is mocked to return the test input.)
        expect(
            v,
            &format!("apps read #{i}"),
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        );
    }
    assert_nothing_left(&[&m], Duration::from_secs(3));
    assert_healthy(&pool);
}

/// A TCP connect (and a UDP datagram) to a port listening on the host's 127.0.0.1. seccomp
/// refuses any socket but AF_UNIX; the network namespace has only a down loopback anyway.
#[test]
fn tcp_connect_to_host_loopback_is_blocked() {
    let _serial = serial();
    let pool = hostile_pool(2, SandboxLimits::default());
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen on 127.0.0.1");
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let udp = UdpSocket::bind("127.0.0.1:0").expect("bind udp");
    udp.set_nonblocking(true).unwrap();
    let uport = udp.local_addr().unwrap().port();
    let tcp = format!("import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=0.5)\ns.sendall(b'pwned')\nprint(42)\n");
    let datagram = format!("import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\ns.sendto(b'pwned', ('127.0.0.1', {uport}))\nprint(42)\n");
    let v6 = format!("import socket\ns = socket.socket(socket.AF_INET6)\ns.connect(('::1', {port}))\nprint(42)\n");
    let raw = "import socket\ns = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)\nprint(42)\n"
        .to_owned();
    let items = vec![
        (add_problem("net-tcp"), tcp),
        (add_problem("net-udp"), datagram),
        (add_problem("net-tcp6"), v6),
        (add_problem("net-packet"), raw),
    ];
    let apps_items = items.clone();
    let v = common::judge(&pool, Strict, fast_limits(), items);
    for (i, v) in v.iter().enumerate() {
        expect(
            v,
            &format!("strict socket #{i}"),
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        );
        expect_stderr(v, "socket", &["PermissionError", "Operation not permitted"]);
    }
    let v = common::judge(&pool, Apps, fast_limits(), apps_items);
    for (i, v) in v.iter().enumerate() {
        expect(
            v,
            &format!("apps socket #{i}"),
            SampleStatus::Failed,
            TestStatus::RuntimeError,
        );
    }
    match listener.accept() {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((_, peer)) => panic!("the sandbox connected to the host's 127.0.0.1:{port} from {peer}"),
        Err(e) => panic!("accept: {e}"),
    }
    let mut buf = [0u8; 64];
    match udp.recv_from(&mut buf) {
        Err(e) if e.kind() == ErrorKind::WouldBlock => {}
        Ok((n, peer)) => panic!("the sandbox sent {n} bytes to the host's udp port from {peer}"),
        Err(e) => panic!("recv: {e}"),
    }
    assert_nothing_left(&[], Duration::from_secs(3));
    assert_healthy(&pool);
}

// ------------------------------------------------------------------------------------------
// Processes and signals
// ------------------------------------------------------------------------------------------
