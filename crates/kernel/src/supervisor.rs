//! `omnidesk up`: runs a split topology on one machine (DESIGN §3).
//!
//! The supervisor starts one child process per colocation group (`omnidesk serve --services …` on a loopback
//! port of its own), serves the [gateway] on the public address in this process, and keeps the children
//! running: a child that exits is restarted after a backoff, on the same port, so the gateway and the other
//! children never need to learn a new address. It owns:
//! - what every child is told: where each service lives, the generated service-to-service secret, that the
//!   gateway on loopback is a trusted proxy, and this process's pid (a child exits when its parent dies);
//! - the state file `<data_dir>/run/up.json`, rewritten whenever a child (re)starts, for operators and
//!   tests that need the pids and ports;
//! - the one line on standard output, `OmniDesk is ready at http://…`, printed once every child is ready;
//! - an orderly shutdown on Ctrl-C, SIGTERM or the death of its own parent: children get SIGTERM, then
//!   SIGKILL after a deadline, and the state file is removed.

use axum::Router;
use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt as _, AsyncRead, AsyncWriteExt as _, BufReader};
use tokio::net::TcpListener;
use tokio::process::{Child, Command};
use tokio::signal::unix::{SignalKind, signal};
use tokio::sync::{mpsc, oneshot, watch};

use crate::app::Catalogue;
use crate::config::{Config, TopologyMode};
use crate::gateway::{self, Upstreams};
use crate::http::EdgeSettings;
use crate::metrics::Metrics;
use crate::routes::RouteTable;

/// The environment variable naming the process whose death should end this one.
pub const PARENT_PID_VAR: &str = "OMNIDESK_PARENT_PID";

/// The first wait before restarting a child that exited.
const INITIAL_BACKOFF: Duration = Duration::from_millis(200);
/// The longest wait between restarts of a child that keeps exiting.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// A child that ran this long is considered healthy again, and its next restart is quick.
const STABLE_AFTER: Duration = Duration::from_secs(30);
/// How long a child may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// How often children are asked whether they are ready while starting.
const READY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long one readiness request may take.
const READY_REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// How long starting may take before the slow children are named in the log (the wait goes on).
const READY_WARN_EVERY: Duration = Duration::from_secs(60);
/// How often the parent pid is compared with [`PARENT_PID_VAR`].
const PARENT_POLL_INTERVAL: Duration = Duration::from_millis(500);
/// How long the children's remaining output may take to be written at exit.
const OUTPUT_DRAIN_TIMEOUT: Duration = Duration::from_secs(1);
/// How many of the children's output lines may wait to be written to standard error.
const OUTPUT_BACKLOG_LINES: usize = 1024;

/// What `omnidesk up` runs.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The colocation groups, one child process each.
    pub groups: Vec<Vec<&'static str>>,
    /// The gateway's public address (port 0 picks a free port; the actual address is printed).
    pub listen: SocketAddr,
    /// The data directory shared by every child (embedded databases, keys, the state file).
    pub data_dir: PathBuf,
    /// The `omnidesk` executable the children run.
    pub exe: PathBuf,
    /// The configuration file the children load, if one was given.
    pub config_file: Option<PathBuf>,
}

/// The colocation groups a topology asks for: monolith → one group with every service, microservices → one
/// group per service, groups → the configured groups (which must name every service exactly once).
pub fn groups_for(
    mode: TopologyMode,
    config_groups: &[Vec<String>],
    catalogue: Catalogue,
) -> anyhow::Result<Vec<Vec<&'static str>>> {
    let all: Vec<&'static str> = catalogue.iter().map(|spec| spec.name).collect();
    if all.is_empty() {
        bail!("this binary knows no services");
    }
    match mode {
        TopologyMode::Monolith => Ok(vec![all]),
        TopologyMode::Microservices => Ok(all.into_iter().map(|name| vec![name]).collect()),
        TopologyMode::Groups => {
            if config_groups.is_empty() {
                bail!("`topology.groups` is empty; list the groups, e.g. [[\"user\", \"plan\"], [\"inbox\"]]");
            }
            let mut seen: Vec<&'static str> = Vec::new();
            let mut groups = Vec::with_capacity(config_groups.len());
            for group in config_groups {
                if group.is_empty() {
                    bail!("`topology.groups` contains an empty group");
                }
                let mut names = Vec::with_capacity(group.len());
                for service in group {
                    let Some(name) = all.iter().copied().find(|name| name == service) else {
                        bail!("`topology.groups`: unknown service `{service}`; known: {}", all.join(", "));
                    };
                    if seen.contains(&name) {
                        bail!("`topology.groups`: `{name}` is in two groups");
                    }
                    seen.push(name);
                    names.push(name);
                }
                groups.push(names);
            }
            if let Some(missing) = all.iter().find(|name| !seen.contains(name)) {
                bail!("`topology.groups`: `{missing}` is in no group");
            }
            Ok(groups)
        }
    }
}

/// Resolves once this process's parent is no longer the process named by `OMNIDESK_PARENT_PID` (it died and
/// we were re-parented); never resolves if the variable is unset. A supervisor or a test harness sets the
/// variable so that its children cannot outlive it, even when it is killed without a chance to clean up.
pub async fn parent_gone() {
    let expected = match std::env::var(PARENT_PID_VAR) {
        Ok(value) => match value.trim().parse::<u32>() {
            Ok(pid) => pid,
            Err(_) => {
                tracing::warn!(value = %value, "{PARENT_PID_VAR} is not a pid; not watching the parent");
                return std::future::pending().await;
            }
        },
        Err(_) => return std::future::pending().await,
    };
    loop {
        let parent = std::os::unix::process::parent_id();
        if parent != expected {
            tracing::warn!(expected.pid = expected, parent.pid = parent, "the parent process is gone");
            return;
        }
        tokio::time::sleep(PARENT_POLL_INTERVAL).await;
    }
}

/// Runs every group as a child process plus the gateway in this process until Ctrl-C/SIGTERM.
pub async fn up(mut config: Config, catalogue: Catalogue, layout: Layout, site: Option<Router>) -> anyhow::Result<()> {
    // The handlers go in first: a signal arriving while the children start must still stop them.
    let shutdown = shutdown_requested()?;
    tokio::pin!(shutdown);

    if layout.groups.is_empty() || layout.groups.iter().any(Vec::is_empty) {
        bail!("nothing to run: every group needs at least one service");
    }
    std::fs::create_dir_all(&layout.data_dir)
        .with_context(|| format!("creating the data directory {}", layout.data_dir.display()))?;
    config.data.dir = layout.data_dir.clone();
    // Only the user service's process would create the key pair, and the others would fail to start if they
    // came up first; creating it here lets every child find the public key.
    let keys = config.key_files();
    keys.ensure().with_context(|| format!("creating the token keys under {}", keys.private_key.display()))?;
    let secret = config.internal.secret.clone().unwrap_or_else(generate_secret);
    let run_dir = layout.data_dir.join("run");
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;

    // Every port is held until all are chosen, so that no two groups can be given the same one; they are
    // released just before the children bind them.
    let mut groups = Vec::with_capacity(layout.groups.len());
    let mut reservations = Vec::with_capacity(layout.groups.len());
    for services in &layout.groups {
        let reservation = reserve_loopback_port().context("choosing a port for a child process")?;
        let port = reservation.local_addr().context("reading a reserved port")?.port();
        reservations.push(reservation);
        groups.push(Group { name: services.join("+"), services: services.clone(), port });
    }
    drop(reservations);

    let table = RouteTable::build(catalogue)?;
    let listener = TcpListener::bind(layout.listen)
        .await
        .with_context(|| format!("listening on {} for the gateway", layout.listen))?;
    let gateway_addr = listener.local_addr().context("reading the gateway's address")?;
    let launch = Launch {
        exe: layout.exe.clone(),
        data_dir: layout.data_dir.clone(),
        config_file: layout.config_file.clone(),
        env: child_environment(&groups, &secret),
    };
    let (output, output_lines) = mpsc::channel::<String>(OUTPUT_BACKLOG_LINES);
    let output_task = tokio::spawn(write_output(output_lines));
    let mut children = Vec::with_capacity(groups.len());
    for group in &groups {
        let child = launch
            .spawn(group, &output)
            .with_context(|| format!("starting `{}` for the group {}", launch.exe.display(), group.name))?;
        children.push(child);
    }

    // The listener is bound (so the address is known and connections queue) but served only once every
    // child has started: a failure to start one returns without leaving a gateway running behind it.
    let upstreams: HashMap<&'static str, String> =
        groups.iter().flat_map(|group| group.services.iter().map(|service| (*service, group.url()))).collect();
    let settings = EdgeSettings::from(&config.http);
    let document = crate::openapi::document(catalogue);
    let router = gateway::router(table, document, site, Upstreams::new(upstreams), Metrics::new(), &settings);
    let (gateway_stop, gateway_stopping) = oneshot::channel::<()>();
    let gateway_task = tokio::spawn(crate::http::serve(listener, router, (&config.http).into(), async move {
        let _ = gateway_stopping.await;
    }));
    tracing::info!(gateway.addr = %gateway_addr, processes = groups.len(), "gateway listening");

    let state = Arc::new(StateFile {
        path: run_dir.join("up.json"),
        state: Mutex::new(UpState {
            gateway: format!("http://{gateway_addr}"),
            pid: std::process::id(),
            groups: groups
                .iter()
                .zip(&children)
                .map(|(group, child)| GroupState {
                    services: group.services.clone(),
                    url: group.url(),
                    pid: child.id().unwrap_or_default(),
                })
                .collect(),
        }),
    });
    state.write();

    let launch = Arc::new(launch);
    let (stop, stopping) = watch::channel(false);
    let supervisors: Vec<_> = groups
        .iter()
        .cloned()
        .zip(children)
        .enumerate()
        .map(|(index, (group, child))| {
            let supervision = Supervision {
                index,
                group,
                launch: launch.clone(),
                state: state.clone(),
                output: output.clone(),
                stopping: stopping.clone(),
            };
            tokio::spawn(supervision.run(child))
        })
        .collect();
    // The supervisors hold the remaining senders, so the writer ends once they are all done.
    drop(output);

    let reason = tokio::select! {
        reason = &mut shutdown => reason,
        () = wait_ready(&groups) => {
            announce_ready(gateway_addr, groups.len());
            shutdown.await
        }
    };

    tracing::info!(reason, "shutting down");
    // The gateway stops accepting connections while the children finish what they are doing.
    let _ = gateway_stop.send(());
    let _ = stop.send(true);
    for supervisor in supervisors {
        if let Err(error) = supervisor.await {
            tracing::error!(error = %error, "a supervisor task failed");
        }
    }
    let grace = Duration::from_secs(config.http.shutdown_grace_secs);
    match tokio::time::timeout(grace, gateway_task).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(error = %error, "the gateway task failed"),
        Err(_) => tracing::warn!(grace_secs = grace.as_secs(), "gateway connections cut off after the grace period"),
    }
    // The children's last lines are written before we exit, but a grandchild still holding a pipe open must
    // not keep us waiting.
    match tokio::time::timeout(OUTPUT_DRAIN_TIMEOUT, output_task).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => tracing::error!(error = %error, "the output task failed"),
        Err(_) => tracing::debug!("a child's output was still open at exit"),
    }
    state.remove();
    Ok(())
}

/// One child process's group: its services and the loopback port it keeps for its whole life.
#[derive(Debug, Clone)]
struct Group {
    /// The services joined with `+`, used as the prefix of the child's output lines.
    name: String,
    services: Vec<&'static str>,
    port: u16,
}

impl Group {
    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// What every child is started with, apart from its own group.
struct Launch {
    exe: PathBuf,
    data_dir: PathBuf,
    config_file: Option<PathBuf>,
    env: Vec<(String, String)>,
}

impl Launch {
    /// Starts the child for `group`, forwarding its output line by line to `output`.
    fn spawn(&self, group: &Group, output: &mpsc::Sender<String>) -> std::io::Result<Child> {
        let mut command = Command::new(&self.exe);
        command
            .arg("serve")
            .arg("--services")
            .arg(group.services.join(","))
            .arg("--listen")
            .arg(SocketAddr::from(([127, 0, 0, 1], group.port)).to_string())
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(file) = &self.config_file {
            command.arg("--config").arg(file);
        }
        command
            .envs(self.env.iter().map(|(key, value)| (key, value)))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // A terminal's Ctrl-C goes to the whole foreground process group; in a group of their own the
            // children stop when the supervisor tells them to, in order, instead of all at once.
            .process_group(0)
            .kill_on_drop(true);
        let mut child = command.spawn()?;
        if let Some(stdout) = child.stdout.take() {
            tokio::spawn(forward_lines(group.name.clone(), stdout, output.clone()));
        }
        if let Some(stderr) = child.stderr.take() {
            tokio::spawn(forward_lines(group.name.clone(), stderr, output.clone()));
        }
        Ok(child)
    }
}

/// The environment every child gets: where each service lives, the internal secret, the gateway as trusted
/// proxy, and our pid so that a child does not outlive us.
fn child_environment(groups: &[Group], secret: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = groups
        .iter()
        .flat_map(|group| {
            group
                .services
                .iter()
                .map(|service| (format!("OMNIDESK_SERVICES__{}__URL", service.to_ascii_uppercase()), group.url()))
        })
        .collect();
    // Figment parses environment values as TOML-like literals; quoting keeps the secret a string whatever
    // characters a configured one contains.
    env.push(("OMNIDESK_INTERNAL__SECRET".to_owned(), quoted(secret)));
    env.push(("OMNIDESK_HTTP__TRUSTED_PROXIES".to_owned(), r#"["127.0.0.1"]"#.to_owned()));
    env.push((PARENT_PID_VAR.to_owned(), std::process::id().to_string()));
    env
}

/// `value` as a double-quoted string literal.
fn quoted(value: &str) -> String {
    format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""))
}

/// A fresh service-to-service secret: 32 random bytes, hex-encoded.
fn generate_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// A port that is free on loopback right now. The listener is dropped at once, so another process could
/// take the port before the child binds it; on a development machine that is rare, and the child's failure
/// to bind would be logged and retried.
/// A loopback port nobody else holds now, kept while the caller holds the listener.
fn reserve_loopback_port() -> std::io::Result<std::net::TcpListener> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
}

/// Resolves with the reason once this process is asked to stop.
fn shutdown_requested() -> anyhow::Result<impl Future<Output = &'static str>> {
    let mut interrupt = signal(SignalKind::interrupt()).context("installing the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    Ok(async move {
        tokio::select! {
            _ = interrupt.recv() => "interrupted",
            _ = terminate.recv() => "terminated",
            () = parent_gone() => "the parent process exited",
        }
    })
}

/// Polls every child's `/readyz` until all answer 200, naming the slow ones in the log now and then.
async fn wait_ready(groups: &[Group]) {
    let client = match reqwest::Client::builder().no_proxy().timeout(READY_REQUEST_TIMEOUT).build() {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(error = %error, "cannot build an HTTP client to check readiness");
            return std::future::pending().await;
        }
    };
    let started = Instant::now();
    let mut next_warning = READY_WARN_EVERY;
    let mut pending: Vec<&Group> = groups.iter().collect();
    loop {
        let checks = pending.iter().map(|group| {
            let client = client.clone();
            async move {
                let ready = client
                    .get(format!("{}/readyz", group.url()))
                    .send()
                    .await
                    .is_ok_and(|response| response.status() == reqwest::StatusCode::OK);
                (*group, ready)
            }
        });
        pending = futures_util::future::join_all(checks)
            .await
            .into_iter()
            .filter_map(|(group, ready)| (!ready).then_some(group))
            .collect();
        if pending.is_empty() {
            return;
        }
        if started.elapsed() >= next_warning {
            let slow: Vec<&str> = pending.iter().map(|group| group.name.as_str()).collect();
            tracing::warn!(waited_secs = started.elapsed().as_secs(), slow = ?slow, "still waiting for processes to be ready");
            next_warning += READY_WARN_EVERY;
        }
        tokio::time::sleep(READY_POLL_INTERVAL).await;
    }
}

/// Prints the one line tests and people wait for, on standard output.
fn announce_ready(gateway_addr: SocketAddr, processes: usize) {
    let noun = if processes == 1 { "process" } else { "processes" };
    let mut stdout = std::io::stdout().lock();
    let written =
        writeln!(stdout, "OmniDesk is ready at http://{gateway_addr} ({processes} {noun} behind the gateway)")
            .and_then(|()| stdout.flush());
    if let Err(error) = written {
        tracing::warn!(error = %error, "cannot write the ready line to standard output");
    }
}

/// Reads a child's output and passes each line on, prefixed with the child's group.
async fn forward_lines(name: String, stream: impl AsyncRead + Unpin, output: mpsc::Sender<String>) {
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line).await {
            Ok(0) => return,
            Ok(_) => {
                let text = String::from_utf8_lossy(&line);
                let text = text.trim_end_matches(['\n', '\r']);
                if output.send(format!("[{name}] {text}\n")).await.is_err() {
                    return;
                }
            }
            Err(error) => {
                tracing::debug!(group = %name, error = %error, "cannot read a child's output");
                return;
            }
        }
    }
}

/// Writes the children's lines to standard error, one whole line at a time, off the runtime's worker
/// threads (a reader that falls behind slows the children's logging, not the gateway).
async fn write_output(mut lines: mpsc::Receiver<String>) {
    let mut stderr = tokio::io::stderr();
    while let Some(line) = lines.recv().await {
        if stderr.write_all(line.as_bytes()).await.is_err() {
            // Nobody reads our standard error any more; keep draining so the children never block on it.
            continue;
        }
        let _ = stderr.flush().await;
    }
}

/// Keeps one child running until the supervisor stops.
struct Supervision {
    index: usize,
    group: Group,
    launch: Arc<Launch>,
    state: Arc<StateFile>,
    output: mpsc::Sender<String>,
    stopping: watch::Receiver<bool>,
}

impl Supervision {
    /// Watches `child`; restarts it (after a growing backoff) whenever it exits, and stops it when told to.
    async fn run(mut self, child: Child) {
        let mut child = Some(child);
        let mut backoff = INITIAL_BACKOFF;
        loop {
            let started = Instant::now();
            if let Some(mut running) = child.take() {
                tokio::select! {
                    status = running.wait() => {
                        if *self.stopping.borrow() {
                            return;
                        }
                        tracing::warn!(
                            group = %self.group.name,
                            status = %describe(&status),
                            backoff_ms = backoff_after(started, backoff).as_millis(),
                            "process exited unexpectedly; restarting"
                        );
                    }
                    _ = self.stopping.changed() => {
                        stop_child(&self.group.name, running).await;
                        return;
                    }
                }
            }
            backoff = backoff_after(started, backoff);
            tokio::select! {
                () = tokio::time::sleep(backoff) => {}
                _ = self.stopping.changed() => return,
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            if *self.stopping.borrow() {
                return;
            }
            match self.launch.spawn(&self.group, &self.output) {
                Ok(restarted) => {
                    let pid = restarted.id().unwrap_or_default();
                    tracing::info!(group = %self.group.name, pid, "process restarted");
                    self.state.set_pid(self.index, pid);
                    child = Some(restarted);
                }
                Err(error) => {
                    tracing::error!(group = %self.group.name, error = %error, "cannot restart the process");
                }
            }
        }
    }
}

/// The wait before the next restart: back to the start once the child had run long enough to count as
/// healthy, so a crash after days of uptime is retried quickly.
fn backoff_after(started: Instant, backoff: Duration) -> Duration {
    if started.elapsed() >= STABLE_AFTER { INITIAL_BACKOFF } else { backoff }
}

fn describe(status: &std::io::Result<ExitStatus>) -> String {
    match status {
        Ok(status) => status.to_string(),
        Err(error) => format!("cannot wait for it: {error}"),
    }
}

/// SIGTERM, then SIGKILL if the child has not exited within [`STOP_TIMEOUT`].
async fn stop_child(group: &str, mut child: Child) {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        if let Err(error) = kill(Pid::from_raw(pid), Signal::SIGTERM) {
            tracing::debug!(group, pid, error = %error, "cannot send SIGTERM");
        }
        match tokio::time::timeout(STOP_TIMEOUT, child.wait()).await {
            Ok(Ok(status)) => {
                tracing::info!(group, status = %status, "process stopped");
                return;
            }
            Ok(Err(error)) => tracing::warn!(group, error = %error, "cannot wait for the process"),
            Err(_) => {
                tracing::warn!(group, timeout_secs = STOP_TIMEOUT.as_secs(), "process ignored SIGTERM; killing it")
            }
        }
    }
    if let Err(error) = child.kill().await {
        tracing::warn!(group, error = %error, "cannot kill the process");
    }
}

/// `<data_dir>/run/up.json`: where the gateway and every child are, for operators and tests.
struct StateFile {
    path: PathBuf,
    state: Mutex<UpState>,
}

#[derive(Debug, Clone, Serialize)]
struct UpState {
    /// The gateway's URL.
    gateway: String,
    /// The supervisor's pid.
    pid: u32,
    groups: Vec<GroupState>,
}

#[derive(Debug, Clone, Serialize)]
struct GroupState {
    services: Vec<&'static str>,
    url: String,
    /// The pid of the group's current (or most recent) process.
    pid: u32,
}

impl StateFile {
    fn set_pid(&self, index: usize, pid: u32) {
        match self.state.lock() {
            Ok(mut state) => {
                if let Some(group) = state.groups.get_mut(index) {
                    group.pid = pid;
                }
                write_state(&self.path, &state);
            }
            Err(_) => tracing::error!("the state file's lock is poisoned"),
        }
    }

    fn write(&self) {
        match self.state.lock() {
            Ok(state) => write_state(&self.path, &state),
            Err(_) => tracing::error!("the state file's lock is poisoned"),
        }
    }

    fn remove(&self) {
        if let Err(error) = std::fs::remove_file(&self.path)
            && error.kind() != std::io::ErrorKind::NotFound
        {
            tracing::warn!(path = %self.path.display(), error = %error, "cannot remove the state file");
        }
    }
}

/// Replaces the state file in one step (write aside, then rename), so a reader never sees half of it.
/// Called with the lock held, so two writers cannot interleave.
fn write_state(path: &Path, state: &UpState) {
    let written = serde_json::to_vec_pretty(state).map_err(std::io::Error::other).and_then(|json| {
        let temporary = path.with_extension("json.tmp");
        std::fs::write(&temporary, json)?;
        std::fs::rename(&temporary, path)
    });
    if let Err(error) = written {
        tracing::warn!(path = %path.display(), error = %error, "cannot write the state file");
    }
}

#[cfg(test)]
mod tests;
