//! Webhooks of a schedule: a POST on every failed run and on the first good
//! run after a failure (a recovery), as generic JSON or as a Slack-compatible
//! `{"text": ...}` message. A good run after a good run says nothing.

use serde_json::{Value, json};

use super::run::ScheduleRun;
use super::spec::{Notify, WebhookFormat};
use crate::engine::{Outcome, Verdict};
use crate::error::ErrorClass;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    Failed,
    Recovered,
}

fn failed(v: Verdict) -> bool {
    matches!(v, Verdict::Partial | Verdict::Failed(_))
        && v != Verdict::Failed(ErrorClass::Cancelled)
}

/// What a run's verdict means after the previous one; none when there is
/// nothing to tell (good after good, a cancelled or skipped run).
pub fn transition(previous: Option<Verdict>, now: Verdict) -> Option<Transition> {
    if failed(now) {
        return Some(Transition::Failed);
    }
    (now == Verdict::Ok && previous.is_some_and(failed)).then_some(Transition::Recovered)
}

/// The body a webhook receives.
pub fn payload(
    run: &ScheduleRun,
    what: Transition,
    format: WebhookFormat,
    error: Option<&str>,
) -> Value {
    let failures: Vec<Value> = run
        .report
        .items
        .iter()
        .filter(|i| matches!(i.outcome, Outcome::Failed | Outcome::Cancelled))
        .map(|i| {
            json!({
                "operation": i.operation.to_string(),
                "target": i.target,
                "region": i.region,
                "point": i.point,
                "message": i.message,
            })
        })
        .collect();
    let event = match what {
        Transition::Failed => "schedule_failed",
        Transition::Recovered => "schedule_recovered",
    };
    match format {
        WebhookFormat::Json => json!({
            "event": event,
            "schedule": run.schedule,
            "verdict": run.verdict,
            "started_at": run.started_at,
            "duration_ms": run.duration_ms,
            "error": error,
            "failures": failures,
            "points": run.new_points(),
        }),
        WebhookFormat::Slack => {
            let text = match what {
                Transition::Failed => {
                    let mut lines = vec![format!(
                        ":red_circle: drtool schedule *{}* failed ({} at {})",
                        run.schedule,
                        verdict_label(run.verdict),
                        run.started_at.format("%Y-%m-%d %H:%M UTC")
                    )];
                    if let Some(e) = error {
                        lines.push(format!("• {e}"));
                    }
                    for f in failures.iter().take(10) {
                        lines.push(format!(
                            "• {} {} in {}: {}",
                            f["operation"].as_str().unwrap_or(""),
                            f["target"].as_str().unwrap_or(""),
                            f["region"].as_str().unwrap_or(""),
                            f["message"].as_str().unwrap_or("")
                        ));
                    }
                    lines.join("\n")
                }
                Transition::Recovered => format!(
                    ":large_green_circle: drtool schedule *{}* recovered: the run at {} succeeded",
                    run.schedule,
                    run.started_at.format("%Y-%m-%d %H:%M UTC")
                ),
            };
            json!({ "text": text })
        }
    }
}

fn verdict_label(v: Verdict) -> &'static str {
    match v {
        Verdict::Ok => "ok",
        Verdict::Partial => "partly failed",
        Verdict::Cancelled => "cancelled",
        Verdict::Failed(_) => "failed",
    }
}

/// Sends what a run means to the schedule's webhook, if there is something
/// to say; an error says why it could not be delivered.
pub async fn notify(
    notify: &Notify,
    run: &ScheduleRun,
    error: Option<&str>,
) -> Result<Option<Transition>, crate::drill::probe::PostError> {
    let verdict = if error.is_some() {
        Verdict::Failed(ErrorClass::Failed)
    } else {
        run.verdict
    };
    let Some(what) = transition(run.previous.last_outcome, verdict) else {
        return Ok(None);
    };
    let body = payload(run, what, notify.format, error);
    crate::drill::probe::post_json(&notify.webhook, &body).await?;
    Ok(Some(what))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_always_tell_recoveries_once() {
        use Transition::*;
        let bad = Verdict::Failed(ErrorClass::Unreachable);
        let cases = [
            (None, Verdict::Ok, None),
            (Some(Verdict::Ok), Verdict::Ok, None),
            (Some(Verdict::Ok), bad, Some(Failed)),
            (Some(bad), bad, Some(Failed)),
            (Some(bad), Verdict::Partial, Some(Failed)),
            (Some(bad), Verdict::Ok, Some(Recovered)),
            (Some(Verdict::Partial), Verdict::Ok, Some(Recovered)),
            (Some(Verdict::Ok), Verdict::Cancelled, None),
            (Some(bad), Verdict::Failed(ErrorClass::Cancelled), None),
        ];
        for (prev, now, want) in cases {
            assert_eq!(transition(prev, now), want, "{prev:?} -> {now:?}");
        }
    }
}
