//! `omnidesk data`: moving services' data between databases, verified, while OmniDesk keeps running
//! (`kernel::data` does the work; this is its command line and progress display).

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

use anyhow::bail;
use indicatif::{ProgressBar, ProgressStyle};
use kernel::config::Config;
use kernel::service::ServiceSpec;
use kernel::store::Location;
use kernel::store::transfer::{Progress, TableComparison};
use omnidesk::CATALOGUE;

#[derive(clap::Subcommand)]
pub enum DataCommand {
    /// Move one service's data to another database (any engine to any engine), verified, while the
    /// deployment keeps running: the service's writes answer 503 with Retry-After for the copy, its reads
    /// keep answering, other services never pause. Every later start uses the new location
    /// (recorded in <data.dir>/locations.toml; `omnidesk config` shows it).
    Move {
        /// The service whose namespace moves.
        #[arg(long)]
        service: String,
        /// Where to: sqlite://PATH, postgres://…[?schema=NAME] or mysql://…/DATABASE. Required except
        /// with --abort (which then cleans the target the interrupted move named).
        #[arg(long, required_unless_present = "abort")]
        to: Option<String>,
        /// Show what would be copied and whether the target is ready; change nothing.
        #[arg(long, conflicts_with = "abort")]
        dry_run: bool,
        /// Give up an interrupted move: writes resume at the source, the target's partial copy is emptied.
        #[arg(long)]
        abort: bool,
    },
    /// Compare a service's data at two places: row counts and a content checksum per table, naming the
    /// first differing keys. Exits non-zero when they differ.
    Verify {
        #[arg(long)]
        service: String,
        #[arg(long)]
        from: String,
        #[arg(long)]
        to: String,
    },
    /// Move every service to its own database: --to is a template in which {service} is replaced, e.g.
    /// 'postgres://app@db/omnidesk?schema=omnidesk_{service}' or 'mysql://app@db/omnidesk_{service}'.
    Split {
        #[arg(long)]
        to: String,
        /// Show what each move would copy; change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Bring every service back to one place: a server (one schema or database per service, named by
    /// data.namespace) or sqlite://DIR (a file per service in DIR, e.g. sqlite://data for the monolith's).
    Merge {
        #[arg(long)]
        to: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Where each service's data lives, its size and row counts, and any move under way.
    Status,
}

pub async fn run(config: &Config, command: DataCommand) -> anyhow::Result<()> {
    match command {
        DataCommand::Move { service, to, dry_run, abort } => {
            let spec = spec_of(&service)?;
            let to = to.map(|url| target(config, &url, spec)).transpose()?;
            if abort {
                for line in kernel::data::abort_move(config, spec, to.as_ref()).await? {
                    println!("{service}: {line}");
                }
                return Ok(());
            }
            let Some(to) = to else { bail!("--to is required") };
            if dry_run { plan(config, spec, &to).await } else { move_one(config, spec, &to).await }
        }
        DataCommand::Verify { service, from, to } => {
            let spec = spec_of(&service)?;
            let (from, to) = (target(config, &from, spec)?, target(config, &to, spec)?);
            let compared = kernel::data::verify(spec, &from, &to).await?;
            report(&compared);
            let differing = compared.iter().filter(|t| !t.matches()).count();
            if differing > 0 {
                bail!("{differing} of {} tables differ between {from} and {to}", compared.len());
            }
            println!("{service}: {} tables identical at {from} and {to}", compared.len());
            Ok(())
        }
        DataCommand::Split { to, dry_run } | DataCommand::Merge { to, dry_run } => {
            for spec in CATALOGUE.iter().filter(|s| s.migrations.is_some()) {
                let target = kernel::data::target_for(config, &to, spec.name)?;
                if kernel::locations::location_of(config, spec.name)? == target {
                    println!("{}: already at {target}", spec.name);
                    continue;
                }
                if dry_run {
                    plan(config, spec, &target).await?;
                } else {
                    move_one(config, spec, &target).await?;
                }
            }
            Ok(())
        }
        DataCommand::Status => {
            for status in kernel::data::status(config, CATALOGUE).await? {
                let source = if status.recorded { " (moved here; recorded in locations.toml)" } else { "" };
                println!("{}: {}{source}", status.service, status.location);
                if !status.exists {
                    println!("  no data yet");
                    continue;
                }
                if let Some(bytes) = status.bytes {
                    println!("  size: {}", human_bytes(bytes));
                }
                if let Some(moving) = &status.moving {
                    println!("  move: {moving}");
                }
                let rows: u64 = status.tables.iter().map(|(_, n)| n).sum();
                println!("  {} rows in {} tables", rows, status.tables.len());
                for (table, count) in status.tables.iter().filter(|(_, n)| *n > 0) {
                    println!("    {table}: {count}");
                }
            }
            Ok(())
        }
    }
}

fn spec_of(service: &str) -> anyhow::Result<&'static ServiceSpec> {
    match CATALOGUE.iter().find(|s| s.name == service) {
        Some(spec) if spec.migrations.is_some() => Ok(spec),
        Some(_) => bail!("`{service}` stores nothing; there is no data to move"),
        None => bail!("unknown service `{service}`; known: {}", omnidesk::service_names().join(", ")),
    }
}

/// A URL given for `spec` on the command line, as a location (a schema or database named by
/// data.namespace when the URL names none).
fn target(config: &Config, url: &str, spec: &ServiceSpec) -> anyhow::Result<Location> {
    let default = kernel::store::namespace_name(&config.data.namespace, spec.name).map_err(anyhow::Error::msg)?;
    Location::parse(url, &default).map_err(anyhow::Error::msg)
}

async fn plan(config: &Config, spec: &ServiceSpec, to: &Location) -> anyhow::Result<()> {
    let planned = kernel::data::plan_move(config, spec, to).await?;
    let rows: u64 = planned.tables.iter().map(|(_, n)| n).sum();
    println!(
        "{}: would move {rows} rows in {} tables from {} to {} (the target is {})",
        spec.name,
        planned.tables.len(),
        planned.from,
        planned.to,
        planned.target
    );
    for (table, count) in &planned.tables {
        println!("  {table}: {count}");
    }
    if !planned.derived.is_empty() {
        println!("  rebuilt at the target, not copied: {}", planned.derived.join(", "));
    }
    Ok(())
}

async fn move_one(config: &Config, spec: &ServiceSpec, to: &Location) -> anyhow::Result<()> {
    let mut progress = Display::new(spec.name);
    let moving = kernel::data::move_service(config, spec, to, &mut progress);
    let moved = tokio::select! {
        moved = moving => moved?,
        _ = tokio::signal::ctrl_c() => {
            progress.finish();
            for line in kernel::data::abort_move(config, spec, None).await.unwrap_or_default() {
                eprintln!("{}: {line}", spec.name);
            }
            bail!("interrupted: the source stays authoritative; rerun the same command to move again");
        }
    };
    progress.finish();
    println!(
        "{}: moved to {} — {} rows in {} tables copied in {:.1}s ({:.0} rows/s){}{}, verified; writes were held {:.1}s",
        spec.name,
        moved.to,
        moved.rows + moved.resumed,
        moved.tables,
        moved.copy_time.as_secs_f64(),
        moved.rows as f64 / moved.copy_time.as_secs_f64().max(0.001),
        if moved.resumed > 0 { format!(" ({} by the interrupted run)", moved.resumed) } else { String::new() },
        if moved.rebuilt > 0 {
            format!("; {} search documents rebuilt in {:.1}s", moved.rebuilt, moved.rebuild_time.as_secs_f64())
        } else {
            String::new()
        },
        moved.write_pause.as_secs_f64()
    );
    Ok(())
}

fn report(compared: &[TableComparison]) {
    for table in compared {
        if table.matches() {
            println!("  {}: {} rows, checksum {:032x}", table.table, table.source.rows, table.source.checksum);
        } else {
            println!(
                "  {}: DIFFERENT — {} rows (checksum {:032x}) vs {} rows (checksum {:032x}); {}",
                table.table,
                table.source.rows,
                table.source.checksum,
                table.target.rows,
                table.target.checksum,
                table.differing.join("; ")
            );
        }
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// The copy's progress: a bar (rows, rows/s, ETA) on a terminal, a line every few seconds otherwise.
struct Display {
    service: &'static str,
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    started: Instant,
    last_line: Instant,
}

/// How often progress is printed as a line when stderr is not a terminal.
const LINE_EVERY: Duration = Duration::from_secs(2);

impl Display {
    fn new(service: &'static str) -> Self {
        Self { service, bar: None, total: 0, done: 0, started: Instant::now(), last_line: Instant::now() }
    }

    fn line(&self, table: &str) -> String {
        let secs = self.started.elapsed().as_secs_f64().max(0.001);
        let rate = self.done as f64 / secs;
        let eta = if rate > 0.0 { (self.total.saturating_sub(self.done)) as f64 / rate } else { 0.0 };
        format!(
            "{}: {}/{} rows ({:.0}%), {:.0} rows/s, ETA {:.0}s — {table}",
            self.service,
            self.done,
            self.total,
            100.0 * self.done as f64 / self.total.max(1) as f64,
            rate,
            eta
        )
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

impl Progress for Display {
    fn start(&mut self, tables: &[(String, u64)]) {
        self.total = tables.iter().map(|(_, n)| n).sum();
        self.done = 0;
        self.started = Instant::now();
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::new(self.total);
            if let Ok(style) = ProgressStyle::with_template(
                "{prefix} [{bar:30}] {human_pos}/{human_len} rows, {per_sec}, ETA {eta} {msg}",
            ) {
                bar.set_style(style.progress_chars("=> "));
            }
            bar.set_prefix(self.service);
            self.bar = Some(bar);
        } else {
            eprintln!("{}: copying {} rows in {} tables", self.service, self.total, tables.len());
        }
    }

    fn copied(&mut self, table: &str, rows: u64) {
        self.done += rows;
        match &self.bar {
            Some(bar) => {
                bar.set_message(table.to_owned());
                bar.inc(rows);
            }
            None if self.last_line.elapsed() >= LINE_EVERY || self.done == self.total => {
                self.last_line = Instant::now();
                eprintln!("{}", self.line(table));
            }
            None => {}
        }
    }

    fn stage(&mut self, what: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("{}: {what}", self.service)),
            None => eprintln!("{}: {what}", self.service),
        }
    }
}
