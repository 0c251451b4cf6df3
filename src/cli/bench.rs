//! `janus bench`: timings that belong in benchmarks, not in pass/fail tests. Each benchmark runs
//! the real command as a child process several times and reports the median wall time, the
//! spread, and the peak resident memory of the children.

use super::{CliError, CliResult};
use crate::cli::output::{errln, outln};
use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::Instant;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub target: BenchTarget,
}

#[derive(Debug, Subcommand)]
pub enum BenchTarget {
    /// `janus label` end to end (CSV parsing, hashing, neutralization, writing) on the
    /// paper-scale scenario (5,282 symbols × 520 days, 62,400 events, with factors).
    Label {
        /// Use this dataset (prices.csv, indices.csv, universe.csv, factors.csv, events.csv)
        /// instead of generating the paper-scale scenario.
        #[arg(long)]
        data: Option<PathBuf>,
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
    /// 10,000 stationary-bootstrap resamples of the SR delta over 520 days plus 10,000 paired
    /// resamples of the DA/ETA deltas over 62,400 events, on all cores.
    Bootstrap {
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
    /// HGRM rewards per second on one core: for parsed outputs, and for raw completions
    /// (extraction and validation included).
    Reward {
        #[arg(long, default_value_t = 200_000)]
        samples: usize,
        #[arg(long, default_value_t = 7)]
        runs: usize,
    },
    /// Open-loop load on `janus serve` (127.0.0.1) with the reference model: latency
    /// percentiles, timeout/fallback/error ratios, and the time for a kill switch to stop
    /// decisions.
    Serve {
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        #[arg(long, default_value_t = 60)]
        seconds: u32,
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Flip the kill switch (tradingEnabled=false in the runtime file) at this second.
        #[arg(long)]
        kill_at: Option<f64>,
        /// The service's inference budget.
        #[arg(long, default_value_t = 50)]
        timeout_ms: u64,
    },
}

pub fn run(args: BenchArgs) -> CliResult {
    match args.target {
        BenchTarget::Label { data, runs } => bench_label(data, runs.max(1)),
        BenchTarget::Reward { samples, runs } => bench_reward(samples.max(1), runs.max(1)),
        BenchTarget::Bootstrap { runs } => bench_bootstrap(runs.max(1)),
        BenchTarget::Serve {
            rate,
            seconds,
            connections,
            kill_at,
            timeout_ms,
        } => super::bench_serve::bench_serve(
            rate.max(1),
            seconds.max(1),
            connections,
            kill_at,
            timeout_ms,
        ),
    }
}

fn bench_label(data: Option<PathBuf>, runs: usize) -> CliResult {
    let scratch = tempfile_dir()?;
    let data = match data {
        Some(d) => d,
        None => {
            errln!(
                "generating the paper-scale scenario in {}",
                scratch.display()
            );
            let scenario = crate::scenario::generate(&crate::scenario::ScenarioConfig::default());
            super::scenario::write_scenario(&scratch, &scenario)?;
            scratch.clone()
        }
    };
    let exe = std::env::current_exe().map_err(|source| CliError::Io {
        path: PathBuf::from("janus"),
        source,
    })?;
    let file = |name: &str| data.join(name);
    let mut walls = Vec::with_capacity(runs);
    let mut stages: Vec<Vec<(String, f64)>> = Vec::new();
    for i in 0..runs {
        let mut cmd = Command::new(&exe);
        cmd.arg("label")
            .arg("--prices")
            .arg(file("prices.csv"))
            .arg("--indices")
            .arg(file("indices.csv"))
            .arg("--universe")
            .arg(file("universe.csv"))
            .arg("--events")
            .arg(file("events.csv"))
            .arg("--out")
            .arg(scratch.join(format!("out-{i}")))
            .env("JANUS_TIMINGS", "1");
        if file("factors.csv").exists() {
            cmd.arg("--factors").arg(file("factors.csv"));
        }
        let start = Instant::now();
        let out = cmd.output().map_err(|source| CliError::Io {
            path: exe.clone(),
            source,
        })?;
        walls.push(start.elapsed().as_secs_f64());
        if !out.status.success() {
            return Err(CliError::Usage(format!(
                "janus label failed: {}",
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        stages.push(parse_stages(&String::from_utf8_lossy(&out.stderr)));
    }
    let peak_kib = peak_child_rss_kib();
    let _ = std::fs::remove_dir_all(&scratch);

    outln!("janus label, {runs} runs on {}", data.display());
    outln!(
        "  wall: median {:.3} s (min {:.3}, max {:.3})",
        median(&walls),
        walls.iter().cloned().fold(f64::INFINITY, f64::min),
        walls.iter().cloned().fold(0.0, f64::max)
    );
    if let Some(kib) = peak_kib {
        outln!("  peak RSS: {:.0} MiB", kib as f64 / 1024.0);
    }
    if let Some(first) = stages.first() {
        outln!("  median time spent per stage:");
        let mut previous = 0.0;
        for (j, (name, _)) in first.iter().enumerate() {
            let ends: Vec<f64> = stages
                .iter()
                .filter_map(|s| s.get(j).map(|x| x.1))
                .collect();
            let end = median(&ends);
            outln!("    {name:<12} {:.3} s", end - previous);
            previous = end;
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn bench_bootstrap(runs: usize) -> CliResult {
    use crate::evaluation::bootstrap::{BootstrapConfig, PairedHit, accuracy_deltas, sharpe_delta};
    let mut rng = crate::rng::Rng::new(3);
    let base: Vec<f64> = (0..520).map(|_| 0.01 * rng.normal()).collect();
    let cand: Vec<f64> = base
        .iter()
        .map(|b| 0.6 * b + 0.0005 + 0.006 * rng.normal())
        .collect();
    let hits: Vec<PairedHit> = (0..62_400)
        .map(|_| PairedHit {
            candidate_direction: rng.bernoulli(0.59),
            baseline_direction: rng.bernoulli(0.55),
            type_known: true,
            candidate_type: rng.bernoulli(0.80),
            baseline_type: rng.bernoulli(0.70),
        })
        .collect();
    let config = BootstrapConfig::default();
    let mut walls = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        let sr = sharpe_delta(&cand, &base, &config).ok();
        let (da, eta) = accuracy_deltas(&hits, &config);
        walls.push(start.elapsed().as_secs_f64());
        std::hint::black_box((sr, da.ok(), eta.ok()));
    }
    outln!(
        "bootstrap: {} resamples of the SR delta (520 days) + DA/ETA deltas (62,400 events), {runs} runs",
        config.resamples
    );
    outln!(
        "  wall: median {:.3} s (min {:.3}, max {:.3}) on {} threads",
        median(&walls),
        walls.iter().cloned().fold(f64::INFINITY, f64::min),
        walls.iter().cloned().fold(0.0, f64::max),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(ExitCode::SUCCESS)
}

fn bench_reward(samples: usize, runs: usize) -> CliResult {
    use crate::contracts::label::{Label, Sign, Strength};
    use crate::reward::{HgrmConfig, output::parse_completion, score};
    use crate::taxonomy::EventType;
    let mut rng = crate::rng::Rng::new(7);
    let config = HgrmConfig::default();
    let directions = ["long", "short", "hold"];
    let mut labels = Vec::with_capacity(samples);
    let mut completions = Vec::with_capacity(samples);
    for _ in 0..samples {
        let car = 0.03 * rng.normal();
        let t = EventType::KNOWN[rng.below(10) as usize];
        labels.push(Label {
            car,
            direction: if car > 0.0 {
                Sign::Positive
            } else {
                Sign::Negative
            },
            strength: if car.abs() >= 0.02 {
                Strength::Strong
            } else {
                Strength::Weak
            },
            event_type: t,
        });
        let guess = EventType::KNOWN[rng.below(10) as usize];
        completions.push(format!(
            "Reasoning first, then the answer.\n```json\n{{\"direction\": \"{}\", \"event_type\": \"{}\", \"strength\": \"{}\", \"car_estimate\": {:.4}, \"reasoning\": \"The announcement changes expected cash flows for the quarter.\"}}\n```",
            directions[rng.below(3) as usize],
            guess.name(),
            if rng.bernoulli(0.5) { "strong" } else { "weak" },
            0.03 * rng.normal()
        ));
    }
    let parsed: Vec<_> = completions.iter().map(|c| parse_completion(c)).collect();
    let mut checksum = 0.0;
    let mut rate = |f: &mut dyn FnMut() -> f64| {
        let mut rates: Vec<f64> = (0..runs)
            .map(|_| {
                let start = Instant::now();
                checksum += f();
                samples as f64 / start.elapsed().as_secs_f64()
            })
            .collect();
        rates.sort_by(f64::total_cmp);
        rates[rates.len() / 2]
    };
    let parsed_rate = rate(&mut || {
        parsed
            .iter()
            .zip(&labels)
            .map(|(p, l)| score("e", p.as_ref(), l, &config).final_reward)
            .sum()
    });
    let raw_rate = rate(&mut || {
        completions
            .iter()
            .zip(&labels)
            .map(|(c, l)| score("e", parse_completion(c).as_ref(), l, &config).final_reward)
            .sum()
    });
    outln!(
        "HGRM reward, {samples} samples, median of {runs} runs, one thread (checksum {checksum:.3})"
    );
    outln!("  parsed outputs:  {:>12.0} rewards/s", parsed_rate);
    outln!(
        "  raw completions: {:>12.0} rewards/s (extraction and validation included)",
        raw_rate
    );
    Ok(ExitCode::SUCCESS)
}

/// `stage: 0.123s` lines printed by a step run with JANUS_TIMINGS set (cumulative seconds).
fn parse_stages(stderr: &str) -> Vec<(String, f64)> {
    stderr
        .lines()
        .filter_map(|l| {
            let (name, secs) = l.split_once(": ")?;
            Some((name.to_string(), secs.strip_suffix('s')?.parse().ok()?))
        })
        .collect()
}

fn median(xs: &[f64]) -> f64 {
    let mut v = xs.to_vec();
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

/// Largest resident set of any waited-for child, in KiB (Linux `ru_maxrss`).
fn peak_child_rss_kib() -> Option<i64> {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes a rusage into the pointer it is given.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, usage.as_mut_ptr()) };
    // SAFETY: on success the struct was fully written.
    (rc == 0).then(|| unsafe { usage.assume_init() }.ru_maxrss)
}

fn tempfile_dir() -> Result<PathBuf, CliError> {
    let dir = std::env::temp_dir().join(format!("janus-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|source| CliError::Io {
        path: dir.clone(),
        source,
    })?;
    Ok(dir)
}
