//! `drtool stream`: run a target's continuous stream in the foreground, and
//! show where every stream stands per region.

use super::Ctx;
use crate::engine::Verdict;
use crate::engine::stream::{StreamStatus, stream_job};
use crate::error::{Error, ErrorClass};

#[derive(clap::Subcommand, Debug)]
pub enum Command {
    /// Follow a target's source and write segments under its newest point
    /// (taking one first when it has none) to its home and copy_to regions,
    /// until SIGINT/SIGTERM; every change received is written before it stops.
    Run(RunArgs),
    /// Per target with a stream: its base point, the newest revision each
    /// region holds without a hole, the lag behind the source, segments, breaks.
    Status(StatusArgs),
}

#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// The target whose stream to run (its config has `continuous = {...}`).
    #[arg(long, short = 't')]
    pub target: String,
}

#[derive(clap::Args, Debug)]
pub struct StatusArgs {
    /// Only this target (every target with `continuous` when omitted).
    #[arg(long, short = 't')]
    pub target: Option<String>,
}

pub async fn run(ctx: &Ctx, command: &Command) -> Result<Verdict, Error> {
    match command {
        Command::Run(a) => run_stream(ctx, a).await,
        Command::Status(a) => status(ctx, a).await,
    }
}

async fn run_stream(ctx: &Ctx, args: &RunArgs) -> Result<Verdict, Error> {
    let job = stream_job(&ctx.engine, &args.target);
    let counters = crate::engine::stream::StreamCounters::default();
    let run = job.settle(
        ctx.engine.stream(&args.target, &job, &counters).await,
        |r| format!("{} segments, up to revision {}", r.segments, r.reaches),
    )?;
    ctx.sync().await;
    ctx.emit(|e| e.items([&run]));
    if !ctx.json() {
        outln!(
            "stream of {} stopped: {} segments ({} events) written, following base point {}, up to revision {}; {} restarts, {} gaps",
            run.target,
            run.segments,
            run.events,
            run.bases.join(", "),
            run.reaches,
            run.restarts,
            run.gaps
        );
    }
    Ok(if ctx.engine.cancel_token().is_cancelled() {
        // Stopping is how a stream ends: it wrote what it had first.
        Verdict::Ok
    } else {
        Verdict::Failed(ErrorClass::Failed)
    })
}

async fn status(ctx: &Ctx, args: &StatusArgs) -> Result<Verdict, Error> {
    let all = ctx.engine.stream_status(args.target.as_deref()).await?;
    ctx.emit(|e| e.items(&all));
    if !ctx.json() {
        if all.is_empty() {
            outln!(
                "no target has a continuous stream (add continuous = {{ segment = \"1s\" }} to a target whose kind streams; see the README)"
            );
        }
        for s in &all {
            for line in lines(s) {
                outln!("{line}");
            }
        }
    }
    let failed = all.iter().any(|s| {
        s.source_error.is_some()
            || s.regions
                .iter()
                .any(|r| r.error.is_some() || r.broken.is_some())
    });
    Ok(if failed {
        Verdict::Partial
    } else {
        Verdict::Ok
    })
}

/// A target's stream, for people.
pub fn lines(s: &StreamStatus) -> Vec<String> {
    let source = match (&s.source_position, &s.source_error) {
        (Some(p), _) => format!("source at revision {p}"),
        (None, Some(e)) => format!("source not reached: {e}"),
        (None, None) => "source not asked".into(),
    };
    let mut out = vec![format!("{} ({source})", s.target)];
    for r in &s.regions {
        let mut line = format!("  {:<14}", r.region);
        match (&r.base, r.reaches) {
            (Some(base), Some(reaches)) => {
                line.push_str(&format!(
                    " base {base} (revision {}), {} segments, up to revision {reaches}",
                    r.base_position.unwrap_or_default(),
                    r.segments
                ));
                if let (Some(revs), Some(secs)) = (r.lag_revisions, r.lag_seconds) {
                    line.push_str(&format!(", lag {revs} revisions / {secs:.1} s"));
                }
            }
            (Some(base), None) => line.push_str(&format!(" base {base}")),
            _ => line.push_str(" no segments"),
        }
        if let Some(b) = &r.broken {
            line.push_str(&format!("; BROKEN: {b}"));
        }
        if let Some(g) = &r.gap {
            line.push_str(&format!("; {g}"));
        }
        if let Some(e) = &r.error {
            line.push_str(&format!("; error: {e}"));
        }
        out.push(line);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::stream::RegionStream;

    #[test]
    fn status_lines_say_base_reach_lag_and_breaks_per_region() {
        let s = StreamStatus {
            target: "kv".into(),
            source_position: Some(120),
            source_error: None,
            regions: vec![
                RegionStream {
                    region: "us-east-1".into(),
                    base: Some("20261207T112958Z-37200193".into()),
                    base_position: Some(100),
                    segments: 3,
                    reaches: Some(118),
                    lag_revisions: Some(2),
                    lag_seconds: Some(0.8),
                    ..RegionStream::default()
                },
                RegionStream {
                    region: "us-west-2".into(),
                    base: Some("20261207T112958Z-37200193".into()),
                    base_position: Some(100),
                    segments: 1,
                    reaches: Some(105),
                    broken: Some("revisions 106..=110 are in no segment".into()),
                    gap: Some("started again at revision 100 after a gap".into()),
                    ..RegionStream::default()
                },
                RegionStream {
                    region: "eu-west-1".into(),
                    error: Some("cannot reach the store".into()),
                    ..RegionStream::default()
                },
            ],
        };
        let text = lines(&s).join("\n");
        assert_eq!(
            text,
            "kv (source at revision 120)\n  us-east-1      base 20261207T112958Z-37200193 (revision 100), 3 segments, up to revision 118, lag 2 revisions / 0.8 s\n  us-west-2      base 20261207T112958Z-37200193 (revision 100), 1 segments, up to revision 105; BROKEN: revisions 106..=110 are in no segment; started again at revision 100 after a gap\n  eu-west-1      no segments; error: cannot reach the store"
        );
    }
}
