//! What the HTTP benchmarks share: the release binary started as a real server, and percentiles.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The release binary serving a topology on a free port, with a fresh data directory; stopped on drop.
pub struct Server {
    child: Child,
    pub base_url: String,
    data: tempfile::TempDir,
}

impl Server {
    pub fn start(args: &[&str]) -> Self {
        let data = tempfile::tempdir().expect("tempdir");
        let mut command = Command::new(env!("CARGO_BIN_EXE_omnidesk"));
        // Split topologies carry events over the machine's RabbitMQ, on an exchange of the benchmark's own;
        // the monolith keeps them in process, as it does by default.
        if args.first() == Some(&"up") {
            command
                .env("RABBIT_MQ_HOST", "127.0.0.1")
                .env("RABBIT_MQ_PASSWORD", "guest")
                .env("OMNIDESK_RABBITMQ__EXCHANGE", "omnidesk-bench.events");
        }
        let mut child = command
            .args(args)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            // `BENCH_SERVER_LOG` sets the server's log filter, e.g. `warn,sqlx::query=debug` for every
            // statement with its time.
            .env("OMNIDESK_LOG", std::env::var("BENCH_SERVER_LOG").unwrap_or_else(|_| "warn".to_owned()))
            .env("OMNIDESK_AUTH__LOGIN_ATTEMPTS_PER_EMAIL_PER_CLIENT_PER_MINUTE", "1000000000")
            .env("OMNIDESK_AUTH__LOGIN_FAILURES_PER_EMAIL_PER_MINUTE", "1000000000")
            .env("OMNIDESK_AUTH__LOGIN_ATTEMPTS_PER_IP_PER_MINUTE", "1000000000")
            .env("OMNIDESK_PARENT_PID", std::process::id().to_string())
            .current_dir(data.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("omnidesk starts");
        let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
        let base_url = loop {
            let line = lines.next().expect("ready line").expect("utf-8");
            if let Some(rest) = line.strip_prefix("OmniDesk is ready at ") {
                break rest.split_whitespace().next().expect("url").to_owned();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Self { child, base_url, data }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(i32::try_from(self.child.id()).expect("pid"));
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let _ = self.child.wait();
    }
}

impl Server {
    /// The data directory (for administrative commands).
    pub fn data_dir(&self) -> PathBuf {
        self.data.path().to_owned()
    }

    /// Runs `omnidesk ARGS --data-dir <this server's data>`; returns its standard output.
    pub fn omnidesk(&self, args: &[&str]) -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_omnidesk"))
            .args(args)
            .arg("--data-dir")
            .arg(self.data_dir())
            .output()
            .expect("omnidesk runs");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8(output.stdout).expect("utf-8").trim().to_owned()
    }
}

pub fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    if samples.is_empty() {
        return Duration::ZERO;
    }
    samples.sort();
    let rank = ((samples.len() as f64 - 1.0) * p).round() as usize;
    samples[rank]
}

impl Server {
    /// CPU time (user + system) the server's processes have used so far: the process itself and, for a
    /// supervisor, every process under it (Linux `/proc`; zero elsewhere).
    pub fn cpu_time(&self) -> Duration {
        let ticks_per_second = 100.0; // USER_HZ, which Linux reports /proc times in on every architecture.
        let mut stats = Vec::new();
        if let Ok(entries) = std::fs::read_dir("/proc") {
            for entry in entries.flatten() {
                let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
                // The command name is in parentheses and may hold spaces; the fields after it are plain.
                let Some((head, rest)) = stat.rsplit_once(") ") else { continue };
                let Ok(pid) = head.split(' ').next().unwrap_or_default().parse::<u32>() else { continue };
                let fields: Vec<&str> = rest.split(' ').collect();
                let field = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok()).unwrap_or(0);
                // After the name: state (0), ppid (1), …, utime (11), stime (12).
                stats.push((pid, u32::try_from(field(1)).unwrap_or(0), field(11) + field(12)));
            }
        }
        let mut tree = vec![self.child.id()];
        let mut ticks = 0;
        while let Some(pid) = tree.pop() {
            for &(child, parent, used) in &stats {
                if child == pid {
                    ticks += used;
                }
                if parent == pid {
                    tree.push(child);
                }
            }
        }
        Duration::from_secs_f64(ticks as f64 / ticks_per_second)
    }
}
