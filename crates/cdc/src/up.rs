//! `totesys-cdc up`: every component as a child process of one supervisor, each with its
//! own metrics port and its output prefixed with its name; restarted when it fails,
//! stopped in data-flow order on SIGTERM so each flushes what the one before it sent.

use std::net::{IpAddr, SocketAddr};
use std::process::{ExitStatus, Stdio};
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

/// Arguments of `up`.
#[derive(Debug, clap::Args)]
pub struct UpArgs {
    /// Also run the simulator, making live changes at --simulate-rate.
    #[arg(long)]
    simulate: bool,
    /// Changes per second the simulator makes.
    #[arg(long, default_value_t = 100.0)]
    simulate_rate: f64,
    /// Create the totesys schema and seed data first (`simulate --init`; a fresh source only).
    #[arg(long)]
    init_source: bool,
    /// Do not run `init` (publication, topics, subjects, warehouse DDL) first.
    #[arg(long)]
    no_init: bool,
    /// Do not run the schema registry (capture and the lake use --registry-url's).
    #[arg(long)]
    no_registry: bool,
    /// Lake writers to run (they share the topics' partitions).
    #[arg(long, default_value_t = 1)]
    lake_writers: u16,
    /// Address the components' `/metrics` and health endpoints listen on.
    #[arg(long, default_value = "127.0.0.1")]
    metrics_host: IpAddr,
    /// First metrics port: capture on it, the first lake writer on +1, the modeler on
    /// +2, further lake writers from +3.
    #[arg(long, default_value_t = 9101)]
    metrics_port: u16,
    /// Seconds a component has to exit after SIGTERM before it is killed.
    #[arg(long, default_value_t = 60)]
    stop_timeout: u64,
    /// Stop everything after this many seconds (default: run until Ctrl-C or SIGTERM).
    #[arg(long)]
    duration: Option<u64>,
}

/// One component: its name (the prefix of its output) and its subcommand's arguments.
#[derive(Debug, Clone)]
struct Component {
    name: String,
    args: Vec<String>,
    /// Whether it runs until stopped or runs once; either is restarted when it fails.
    long_running: bool,
    /// Where it serves `/metrics`, if it does.
    metrics: Option<SocketAddr>,
}

impl Component {
    fn new(name: &str, args: &[&str], long_running: bool) -> Self {
        Component {
            name: name.to_owned(),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            long_running,
            metrics: None,
        }
    }

    fn metrics(mut self, addr: SocketAddr) -> Self {
        self.args.push("--metrics-listen".into());
        self.args.push(addr.to_string());
        self.metrics = Some(addr);
        self
    }
}

/// Runs the components until Ctrl-C, SIGTERM or --duration, then stops them in order.
pub async fn run(args: UpArgs) -> anyhow::Result<()> {
    let exe = std::env::current_exe().context("locating the totesys-cdc binary")?;
    // Children read the same config file; secrets stay out of their command lines.
    let config = crate::config::config_path(&std::env::args_os().collect::<Vec<_>>());
    let launcher = Launcher { exe, config };
    let port = |offset: u16| -> anyhow::Result<SocketAddr> {
        let port = args
            .metrics_port
            .checked_add(offset)
            .context("--metrics-port leaves no room for every component")?;
        Ok(SocketAddr::new(args.metrics_host, port))
    };

    if args.init_source {
        launcher
            .run_once(&Component::new(
                "simulate",
                &["simulate", "--init", "--rate", "0"],
                false,
            ))
            .await?;
    }
    // Data-flow order: stopping in this order lets each drain what the one before sent.
    let mut components = Vec::new();
    if args.simulate {
        let rate = args.simulate_rate.to_string();
        components.push(Component::new(
            "simulate",
            &["simulate", "--rate", &rate],
            true,
        ));
    }
    // The modeler applies a source transaction once its END record says it is whole.
    components.push(
        Component::new(
            "capture",
            &[
                "capture",
                "--no-progress",
                "--transaction-topic",
                "--report-every",
                "30",
            ],
            true,
        )
        .metrics(port(0)?),
    );
    for i in 0..args.lake_writers.max(1) {
        let offset = if i == 0 { 1 } else { 2 + i };
        let name = if args.lake_writers > 1 {
            format!("lake-{i}")
        } else {
            "lake".to_owned()
        };
        // Static membership: a writer `up` restarts after a crash takes its partitions
        // back at once; the host name keeps two `up`s on one group apart.
        let instance = format!("{}-{name}", host_name());
        components.push(
            Component::new(&name, &["lake", "--group-instance-id", &instance], true)
                .metrics(port(offset)?),
        );
    }
    components.push(Component::new("model", &["model"], true).metrics(port(2)?));
    if !args.no_registry {
        components.push(Component::new("registry", &["registry"], true));
    }
    for c in &components {
        let metrics = c
            .metrics
            .map_or(String::new(), |a| format!(" (metrics http://{a}/metrics)"));
        eprintln!("up: starting {}{metrics}", c.name);
    }

    let (failed_tx, mut failed_rx) = tokio::sync::mpsc::channel::<String>(components.len());
    let stop_timeout = Duration::from_secs(args.stop_timeout);
    let start = |component: &Component| {
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(launcher.clone().supervise(
            component.clone(),
            stop_rx,
            stop_timeout,
            failed_tx.clone(),
        ));
        (component.name.clone(), stop_tx, task)
    };
    // The registry first: `init` registers subjects in it, capture and the lake use it.
    let mut running = Vec::new();
    if let Some(registry) = components.iter().find(|c| c.name == "registry") {
        running.push(start(registry));
    }
    if !args.no_init {
        let init = Component::new("init", &["init"], false);
        let mut attempt = 1;
        while let Err(e) = launcher.run_once(&init).await {
            // The registry or the broker may still be starting.
            anyhow::ensure!(attempt < 10, "{e:#}; gave up after {attempt} attempts");
            eprintln!("up: {e:#}; retrying in 2 s");
            tokio::time::sleep(Duration::from_secs(2)).await;
            attempt += 1;
        }
    }
    // Downstream first, so nothing is produced before its reader runs; stopped in the
    // reverse order (simulator, capture, lake, model, registry).
    for component in components.iter().rev().filter(|c| c.name != "registry") {
        running.push(start(component));
    }
    running.reverse();

    let deadline = async {
        match args.duration {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    let failure = tokio::select! {
        _ = crate::shutdown_signal() => None,
        _ = deadline => None,
        failed = failed_rx.recv() => failed,
    };
    eprintln!("up: stopping (simulator, capture, lake, model, registry, in that order)");
    let mut errors = Vec::new();
    for (name, stop, task) in running {
        let _ = stop.send(true);
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("{name}: {e:#}")),
            Err(e) => errors.push(format!("{name}: {e}")),
        }
    }
    if let Some(failed) = failure {
        errors.insert(0, failed);
    }
    if errors.is_empty() {
        eprintln!("up: every component stopped cleanly");
        Ok(())
    } else {
        anyhow::bail!("{}", errors.join("; "))
    }
}

/// Starts children of this binary.
#[derive(Debug, Clone)]
struct Launcher {
    exe: std::path::PathBuf,
    config: Option<std::path::PathBuf>,
}

impl Launcher {
    fn spawn(&self, component: &Component) -> anyhow::Result<Child> {
        let mut command = Command::new(&self.exe);
        command
            .args(&component.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        if let Some(config) = &self.config {
            command.env(crate::config::CONFIG_ENV, config);
        }
        let mut child = command
            .spawn()
            .with_context(|| format!("starting {}", component.name))?;
        if let Some(out) = child.stdout.take() {
            prefix_lines(component.name.clone(), out);
        }
        if let Some(err) = child.stderr.take() {
            prefix_lines(component.name.clone(), err);
        }
        Ok(child)
    }

    /// Runs a one-shot component to its end; an error if it fails.
    async fn run_once(&self, component: &Component) -> anyhow::Result<()> {
        let status = self
            .spawn(component)?
            .wait()
            .await
            .with_context(|| format!("waiting for {}", component.name))?;
        anyhow::ensure!(status.success(), "{} failed ({status})", component.name);
        Ok(())
    }

    /// Keeps a component running until `stop`: restarted with backoff when it fails,
    /// given SIGTERM and `stop_timeout` to exit when stopped.
    async fn supervise(
        self,
        component: Component,
        mut stop: watch::Receiver<bool>,
        stop_timeout: Duration,
        failed: tokio::sync::mpsc::Sender<String>,
    ) -> anyhow::Result<()> {
        let mut backoff = Duration::from_secs(1);
        loop {
            let started = tokio::time::Instant::now();
            let mut child = self.spawn(&component)?;
            let exit = tokio::select! {
                status = child.wait() => Some(status),
                _ = stop.wait_for(|s| *s) => None,
            };
            let Some(status) = exit else {
                return terminate(&component.name, &mut child, stop_timeout).await;
            };
            let status = status.with_context(|| format!("waiting for {}", component.name))?;
            if status.success() {
                // It finished by its own choice (a one-shot, or --duration).
                if component.long_running {
                    eprintln!("up: {} finished", component.name);
                }
                let _ = stop.wait_for(|s| *s).await;
                return Ok(());
            }
            // A usage error (exit status 2) will not mend itself: stop everything.
            if status.code() == Some(2) {
                let _ = failed
                    .send(format!(
                        "{} rejected its settings ({status})",
                        component.name
                    ))
                    .await;
                let _ = stop.wait_for(|s| *s).await;
                return Ok(());
            }
            if started.elapsed() > Duration::from_secs(60) {
                backoff = Duration::from_secs(1);
            }
            eprintln!(
                "up: {} exited ({status}); restarting in {backoff:?}",
                component.name
            );
            let stopped = tokio::select! {
                _ = tokio::time::sleep(backoff) => false,
                _ = stop.wait_for(|s| *s) => true,
            };
            if stopped {
                return Ok(());
            }
            backoff = (backoff * 2).min(Duration::from_secs(30));
        }
    }
}

/// Sends SIGTERM, waits up to `timeout`, then kills.
async fn terminate(name: &str, child: &mut Child, timeout: Duration) -> anyhow::Result<()> {
    if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGTERM,
        );
    }
    match tokio::time::timeout(timeout, child.wait()).await {
        Ok(Ok(status)) => exited(name, status),
        Ok(Err(e)) => Err(e).with_context(|| format!("waiting for {name}")),
        Err(_) => {
            let _ = child.kill().await;
            anyhow::bail!("{name} did not stop within {timeout:?} of SIGTERM and was killed")
        }
    }
}

fn exited(name: &str, status: ExitStatus) -> anyhow::Result<()> {
    anyhow::ensure!(status.success(), "{name} exited with {status} on SIGTERM");
    eprintln!("up: {name} stopped");
    Ok(())
}

/// Copies a child's output to our stderr, each line prefixed with the component's name.
fn prefix_lines(name: String, stream: impl tokio::io::AsyncRead + Unpin + Send + 'static) {
    tokio::spawn(async move {
        let mut lines = BufReader::new(stream).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            eprintln!("{name:>9} | {line}");
        }
    });
}

/// This machine's host name (for the lake writers' group instance ids), `localhost` if unknown.
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_owned())
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
