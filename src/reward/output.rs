//! The model output contract (docs/model-output.md): a completion is text containing exactly one
//! JSON object `{"direction", "event_type", "strength", "car_estimate", "reasoning"}`. This
//! module finds it (in prose or a code fence), validates it strictly, and names what is wrong
//! otherwise. It never panics on any text.

use crate::contracts::label::{Direction, Prediction, Strength};
use crate::contracts::reward::FormatFailure;
use crate::taxonomy::EventType;
use serde::Deserialize;

/// Completions longer than this are refused unread (bytes).
pub const MAX_COMPLETION_BYTES: usize = 64 * 1024;

/// A completion that satisfied the contract.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedOutput {
    pub prediction: Prediction,
    /// Characters of the `reasoning` field.
    pub reasoning_chars: usize,
    /// Characters of the completion outside the JSON object (prose, fences), whitespace and
    /// code-fence markers excluded.
    pub extra_chars: usize,
}

/// The fields exactly as the contract spells them; anything else is refused.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawOutput {
    direction: Direction,
    #[serde(default)]
    event_type: Option<String>,
    strength: Strength,
    car_estimate: f64,
    reasoning: String,
}

fn failure(kind: &str, detail: impl Into<String>) -> FormatFailure {
    FormatFailure {
        kind: kind.to_string(),
        detail: detail.into(),
    }
}

/// Parses one completion.
pub fn parse_completion(text: &str) -> Result<ParsedOutput, FormatFailure> {
    if text.len() > MAX_COMPLETION_BYTES {
        return Err(failure(
            "too_long",
            format!("{} bytes; at most {MAX_COMPLETION_BYTES}", text.len()),
        ));
    }
    if text.trim().is_empty() {
        return Err(failure("empty_completion", "the completion has no text"));
    }
    // Every balanced JSON object at the top level of the text; objects inside one are skipped.
    let mut objects: Vec<(usize, usize)> = Vec::new();
    let mut first_error: Option<String> = None;
    let mut from = 0;
    while let Some(i) = memchr::memchr(b'{', &text.as_bytes()[from..]).map(|i| from + i) {
        let mut stream =
            serde_json::Deserializer::from_str(&text[i..]).into_iter::<serde::de::IgnoredAny>();
        match stream.next() {
            Some(Ok(_)) => {
                let end = i + stream.byte_offset();
                objects.push((i, end));
                from = end;
            }
            Some(Err(e)) => {
                first_error.get_or_insert_with(|| e.to_string());
                from = i + 1;
            }
            None => break,
        }
    }
    let candidates: Vec<(usize, usize)> = objects
        .into_iter()
        .filter(|(a, b)| text[*a..*b].contains("\"direction\""))
        .collect();
    let (start, end) = match candidates.as_slice() {
        [one] => *one,
        [] => {
            return Err(match first_error {
                Some(e) => failure("invalid_json", format!("no valid JSON object: {e}")),
                None => failure(
                    "no_json_object",
                    "no JSON object with a \"direction\" field in the completion",
                ),
            });
        }
        many => {
            return Err(failure(
                "multiple_json_objects",
                format!(
                    "{} JSON objects with a \"direction\" field; the contract allows one",
                    many.len()
                ),
            ));
        }
    };
    let raw: RawOutput = serde_json::from_str(&text[start..end]).map_err(|e| {
        let message = e.to_string();
        let kind = if message.starts_with("missing field") {
            "missing_field"
        } else if message.starts_with("unknown field") {
            "unknown_field"
        } else {
            "invalid_value"
        };
        failure(kind, message)
    })?;
    if !raw.car_estimate.is_finite() {
        return Err(failure(
            "invalid_value",
            "car_estimate is not a finite number",
        ));
    }
    let event_type = match raw.event_type.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(name) => Some(parse_event_type(name).ok_or_else(|| {
            failure(
                "invalid_value",
                format!("event_type `{name}` is not one of the ten types"),
            )
        })?),
    };
    let outside = text[..start].chars().chain(text[end..].chars());
    let extra_chars = outside
        .filter(|c| !c.is_whitespace() && *c != '`')
        .count()
        .saturating_sub(fence_language_chars(&text[..start]));
    Ok(ParsedOutput {
        prediction: Prediction {
            direction: raw.direction,
            event_type,
            strength: raw.strength,
            car_estimate: raw.car_estimate,
        },
        reasoning_chars: raw.reasoning.chars().count(),
        extra_chars,
    })
}

/// The ten types by their contract names (the model is asked for these exact names).
fn parse_event_type(name: &str) -> Option<EventType> {
    EventType::KNOWN.into_iter().find(|t| t.name() == name)
}

/// Length of a code fence's language tag right before the object (```` ```json ````), which is
/// not prose.
fn fence_language_chars(before: &str) -> usize {
    let trimmed = before.trim_end();
    match trimmed.rfind("```") {
        Some(i) => {
            let tag = &trimmed[i + 3..];
            if tag.chars().all(|c| c.is_ascii_alphanumeric()) {
                tag.chars().count()
            } else {
                0
            }
        }
        None => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"{"direction": "long", "event_type": "dividend", "strength": "strong", "car_estimate": 0.031, "reasoning": "A large cash dividend signals confidence."}"#;

    #[test]
    fn a_bare_object_parses() {
        let p = parse_completion(GOOD).unwrap();
        assert_eq!(p.prediction.direction, Direction::Long);
        assert_eq!(p.prediction.event_type, Some(EventType::Dividend));
        assert_eq!(p.prediction.car_estimate, 0.031);
        assert_eq!(p.extra_chars, 0);
        assert_eq!(
            p.reasoning_chars,
            "A large cash dividend signals confidence.".len()
        );
    }

    #[test]
    fn objects_in_prose_and_fences_are_found() {
        let fenced = format!("Here is my answer:\n```json\n{GOOD}\n```\n");
        let p = parse_completion(&fenced).unwrap();
        assert_eq!(p.extra_chars, "Hereismyanswer:".chars().count());
        let with_braces = format!("Thinking {{not json}} then {GOOD} done.");
        assert!(parse_completion(&with_braces).is_ok());
    }

    #[test]
    fn every_failure_is_named() {
        let kind = |t: &str| parse_completion(t).unwrap_err().kind;
        assert_eq!(kind(""), "empty_completion");
        assert_eq!(kind("I think it goes up."), "no_json_object");
        assert_eq!(kind("{\"direction\": \"long\","), "invalid_json");
        assert_eq!(kind(&format!("{GOOD} {GOOD}")), "multiple_json_objects");
        assert_eq!(
            kind(&GOOD.replace("\"strength\": \"strong\", ", "")),
            "missing_field"
        );
        assert_eq!(kind(&GOOD.replace("\"long\"", "\"buy\"")), "invalid_value");
        assert_eq!(kind(&GOOD.replace("dividend", "merger")), "invalid_value");
        assert_eq!(kind(&GOOD.replace("0.031", "\"high\"")), "invalid_value");
        assert_eq!(kind(&GOOD.replace("0.031", "1e999")), "invalid_value");
        assert_eq!(
            kind(&GOOD.replace("}", ", \"confidence\": 1}")),
            "unknown_field"
        );
        assert_eq!(kind(&"x".repeat(MAX_COMPLETION_BYTES + 1)), "too_long");
    }

    #[test]
    fn a_missing_or_empty_event_type_is_missing_not_wrong() {
        let p = parse_completion(&GOOD.replace("\"event_type\": \"dividend\", ", "")).unwrap();
        assert_eq!(p.prediction.event_type, None);
        let p = parse_completion(&GOOD.replace("\"dividend\"", "\"\"")).unwrap();
        assert_eq!(p.prediction.event_type, None);
    }
}
