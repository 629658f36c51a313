//! kftray's port-forward engine as a process of its own, for Tender's benchmark (issue 16).
//!
//! Starts forwards the way kftray does: each forward is a kftray configuration
//! (`kftray_commons::models::config_model::Config`) saved in kftray's database and
//! started with `kftray_portforward::start_port_forward_with_mode`, the call kftray's
//! tray and kftui make (`start_port_forward` is the same call on the file database).
//! The database here is kftray's in-memory one (`DatabaseMode::Memory`), and kftray's
//! configuration directory (`KFTRAY_CONFIG`) is a temporary directory of this process
//! unless the caller sets one, so nothing is written to the user's ~/.kftray.  No
//! telemetry: kftray reports only after its application initialises it, which this
//! does not do.
//!
//! Usage:
//!
//! ```text
//! kftray-bench-peer --kubeconfig PATH --context CTX --namespace NS TARGET [LOCAL:]REMOTE
//! kftray-bench-peer --kubeconfig PATH --forwards FILE
//! ```
//!
//! TARGET is `svc/NAME` (kftray's "service" workload: a pod of the Service's selector,
//! REMOTE a Service port) or `label/SELECTOR` (kftray's "pod" workload, which selects
//! a pod by label, e.g. `label/app=web`: what a kftray user configures for a Deployment;
//! REMOTE a container port).  LOCAL 0 or absent: a free port.  FILE is a JSON array of
//! `{"context", "namespace", "target", "remote", "local"?}` objects, started as one batch
//! (kftray starts a batch 16 at a time).
//!
//! Output (stdout, one JSON object a line): per forward `{"event": "listening", "index",
//! "target", "context", "namespace", "local_port", "remote_port"}` or `{"event": "error",
//! "index", "target", "error"}`, in the order of the arguments, once the batch call has
//! returned; then `{"event": "ready", "listening": N, "failed": M, "seconds": S}` (S: from
//! the process's start to the batch call's return).  Then it runs until SIGTERM or SIGINT,
//! stops every forward (`stop_all_port_forward_with_mode`, at most 5 s) and exits 0.
//! Exit status 2 for bad arguments, 1 when no forward could start.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use kftray_commons::models::config_model::Config;
use kftray_commons::utils::config::{insert_config_with_mode, read_configs_with_mode};
use kftray_commons::utils::db_mode::DatabaseMode;
use serde_json::{json, Value};

const MODE: DatabaseMode = DatabaseMode::Memory;

struct Forward {
    context: String,
    namespace: String,
    target: String,
    remote: u16,
    local: u16,
}

fn usage(message: &str) -> ! {
    eprintln!("kftray-bench-peer: {message}");
    eprintln!(
        "usage: kftray-bench-peer --kubeconfig PATH --context CTX --namespace NS TARGET [LOCAL:]REMOTE\n       \
         kftray-bench-peer --kubeconfig PATH --forwards FILE\n\
         TARGET: svc/NAME or label/SELECTOR"
    );
    std::process::exit(2);
}

fn parse_ports(spec: &str) -> Result<(u16, u16), String> {
    let (local, remote) = match spec.split_once(':') {
        Some((l, r)) => (if l.is_empty() { "0" } else { l }, r),
        None => ("0", spec),
    };
    let local = local.parse::<u16>().map_err(|_| format!("bad local port in {spec:?}"))?;
    let remote = remote.parse::<u16>().map_err(|_| format!("bad remote port in {spec:?}"))?;
    if remote == 0 {
        return Err(format!("remote port 0 in {spec:?}"));
    }
    Ok((local, remote))
}

fn parse_args() -> (String, Vec<Forward>) {
    let mut args = std::env::args().skip(1);
    let (mut kubeconfig, mut context, mut namespace, mut file) = (None, None, None, None);
    let mut positional = Vec::new();
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().unwrap_or_else(|| usage(&format!("{name} needs a value")));
        match arg.as_str() {
            "--kubeconfig" => kubeconfig = Some(value("--kubeconfig")),
            "--context" => context = Some(value("--context")),
            "-n" | "--namespace" => namespace = Some(value("--namespace")),
            "--forwards" => file = Some(value("--forwards")),
            "-h" | "--help" => usage("help"),
            _ if arg.starts_with('-') => usage(&format!("unknown option {arg}")),
            _ => positional.push(arg),
        }
    }
    let kubeconfig = kubeconfig.unwrap_or_else(|| usage("--kubeconfig is required"));
    let forwards = match file {
        Some(path) => {
            if !positional.is_empty() || context.is_some() || namespace.is_some() {
                usage("--forwards takes no TARGET, --context or --namespace");
            }
            let text = std::fs::read_to_string(&path).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
            let items: Vec<Value> = serde_json::from_str(&text).unwrap_or_else(|e| usage(&format!("{path}: {e}")));
            items
                .iter()
                .map(|item| {
                    let text = |key: &str| {
                        item[key]
                            .as_str()
                            .map(str::to_owned)
                            .unwrap_or_else(|| usage(&format!("{path}: an item without {key:?}")))
                    };
                    let port = |key: &str| item[key].as_u64().and_then(|p| u16::try_from(p).ok());
                    Forward {
                        context: text("context"),
                        namespace: text("namespace"),
                        target: text("target"),
                        remote: port("remote").unwrap_or_else(|| usage(&format!("{path}: an item without \"remote\""))),
                        local: port("local").unwrap_or(0),
                    }
                })
                .collect()
        }
        None => {
            let [target, ports] = <[String; 2]>::try_from(positional)
                .unwrap_or_else(|_| usage("one TARGET and one [LOCAL:]REMOTE expected"));
            let (local, remote) = parse_ports(&ports).unwrap_or_else(|e| usage(&e));
            vec![Forward {
                context: context.unwrap_or_else(|| usage("--context is required")),
                namespace: namespace.unwrap_or_else(|| usage("--namespace is required")),
                target,
                remote,
                local,
            }]
        }
    };
    if forwards.is_empty() {
        usage("no forwards");
    }
    (kubeconfig, forwards)
}

/// The kftray configuration a user would save for this forward.
fn kftray_config(kubeconfig: &str, f: &Forward) -> Config {
    let (workload, service, target) = match f.target.split_once('/') {
        Some(("svc", name)) => ("service", Some(name.to_owned()), None),
        Some(("label", selector)) => ("pod", None, Some(selector.to_owned())),
        _ => usage(&format!("TARGET {:?} is neither svc/NAME nor label/SELECTOR", f.target)),
    };
    Config {
        id: None,
        service,
        target,
        namespace: f.namespace.clone(),
        context: Some(f.context.clone()),
        kubeconfig: Some(kubeconfig.to_owned()),
        workload_type: Some(workload.to_owned()),
        protocol: "tcp".to_owned(),
        local_port: Some(f.local),
        remote_port: Some(f.remote),
        local_address: Some("127.0.0.1".to_owned()),
        remote_address: None,
        auto_loopback_address: false,
        domain_enabled: Some(false),
        alias: None,
        http_logs_enabled: Some(false),
        ..Config::default()
    }
}

fn emit(value: Value) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{value}");
    let _ = out.flush();
}

async fn run(kubeconfig: String, forwards: Vec<Forward>, t0: Instant) -> i32 {
    // rustls's process-wide crypto provider (ring), as kftray's application installs it at start;
    // the kube client's TLS panics without one.
    kftray_portforward::ssl::ensure_crypto_provider_installed();
    let mut ids = Vec::with_capacity(forwards.len());
    for f in &forwards {
        match insert_config_with_mode(kftray_config(&kubeconfig, f), MODE).await {
            Ok(id) => ids.push(id),
            Err(e) => {
                eprintln!("kftray-bench-peer: saving the configuration of {}: {e}", f.target);
                return 1;
            }
        }
    }
    // Read back as kftray reads them before starting (ids and defaults filled in).
    let saved = match read_configs_with_mode(MODE).await {
        Ok(saved) => saved,
        Err(e) => {
            eprintln!("kftray-bench-peer: reading the configurations back: {e}");
            return 1;
        }
    };
    let configs: Vec<Config> = ids
        .iter()
        .filter_map(|id| saved.iter().find(|c| c.id == Some(*id)).cloned())
        .collect();
    let responses = match kftray_portforward::kube::start_port_forward_with_mode(configs, "tcp", MODE, false).await {
        Ok(responses) => responses,
        Err(e) => {
            // Every forward of the batch failed: the errors, joined.
            for (index, f) in forwards.iter().enumerate() {
                emit(json!({"event": "error", "index": index, "target": f.target, "error": e}));
            }
            emit(json!({"event": "ready", "listening": 0, "failed": forwards.len(),
                        "seconds": t0.elapsed().as_secs_f64()}));
            return 1;
        }
    };
    let seconds = t0.elapsed().as_secs_f64();
    let (mut listening, mut failed) = (0, 0);
    for (index, (id, f)) in ids.iter().zip(&forwards).enumerate() {
        match responses.iter().find(|r| r.id == Some(*id)) {
            Some(r) if !r.failed() => {
                listening += 1;
                emit(json!({"event": "listening", "index": index, "target": f.target, "context": f.context,
                            "namespace": f.namespace, "local_port": r.local_port, "remote_port": f.remote}));
            }
            other => {
                failed += 1;
                let error = other.map_or_else(|| "no response".to_owned(), |r| r.stderr.clone());
                emit(json!({"event": "error", "index": index, "target": f.target, "error": error}));
            }
        }
    }
    emit(json!({"event": "ready", "listening": listening, "failed": failed, "seconds": seconds}));
    if listening == 0 {
        return 1;
    }

    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    let _ = tokio::time::timeout(
        Duration::from_secs(5),
        kftray_portforward::stop_all_port_forward_with_mode(MODE),
    )
    .await;
    0
}

fn main() {
    let t0 = Instant::now();
    let (kubeconfig, forwards) = parse_args();
    // Before any thread exists: kftray reads its configuration directory from here.
    let mut scratch: Option<PathBuf> = None;
    if std::env::var_os("KFTRAY_CONFIG").is_none() {
        let dir = std::env::temp_dir().join(format!("kftray-bench-peer-{}", std::process::id()));
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("kftray-bench-peer: {}: {e}", dir.display());
            std::process::exit(1);
        }
        std::env::set_var("KFTRAY_CONFIG", &dir);
        scratch = Some(dir);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let code = runtime.block_on(run(kubeconfig, forwards, t0));
    runtime.shutdown_timeout(Duration::from_secs(1));
    if let Some(dir) = scratch {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code);
}
