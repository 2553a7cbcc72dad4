//! Injected faults: the ways a real vLLM misbehaves, on demand.
//!
//! A fault is set at start ([`EngineConfig::fault`](super::EngineConfig::fault), textual form
//! such as `slow:4`) and changed at run time through `POST /_mock/faults` (JSON form such as
//! `{"mode":"slow","factor":4}`) or [`EngineHandle::set_fault`](super::EngineHandle::set_fault).
//! Requests already running observe a change at their next token.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Default latency multiplier of `slow`.
pub const DEFAULT_SLOW_FACTOR: f64 = 10.0;
/// Default number of tokens streamed before `die_mid_stream` drops the connection.
pub const DEFAULT_DIE_AFTER_TOKENS: u32 = 2;

fn default_slow_factor() -> f64 {
    DEFAULT_SLOW_FACTOR
}

fn default_die_after() -> u32 {
    DEFAULT_DIE_AFTER_TOKENS
}

/// The fault an engine currently simulates.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Behave.
    #[default]
    None,
    /// Multiply time to first token and inter-token latency by `factor`.
    Slow {
        #[serde(default = "default_slow_factor")]
        factor: f64,
    },
    /// Answer every inference request (chat, completions, embeddings) with a 500.
    #[serde(rename = "error_500")]
    Error500,
    /// Generate `after_tokens` tokens (at most all but the last), then drop the connection
    /// without finishing the response (no `[DONE]` on streams).
    DieMidStream {
        #[serde(default = "default_die_after")]
        after_tokens: u32,
    },
    /// `/health` answers 503 and so does every `/v1` route.
    Dead,
    /// Answer a share `ratio` (0 to 1) of inference requests with 503, chosen by a seeded hash.
    Reject { ratio: f64 },
}

/// A fault that cannot be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum FaultError {
    #[error(
        "unknown fault `{0}` (expected none, slow[:FACTOR], error_500, die_mid_stream[:TOKENS], dead, reject:RATIO)"
    )]
    Unknown(String),
    #[error("fault `{mode}` has an invalid parameter `{value}`")]
    BadParameter { mode: &'static str, value: String },
    #[error("fault `{0}` takes no parameter")]
    UnexpectedParameter(&'static str),
    #[error("slow factor must be a finite number > 0, got {0}")]
    BadFactor(f64),
    #[error("reject ratio must be within 0..=1, got {0}")]
    BadRatio(f64),
}

impl Fault {
    /// Checks the parameters.
    pub fn validate(&self) -> Result<(), FaultError> {
        match *self {
            Self::Slow { factor } if !(factor.is_finite() && factor > 0.0) => {
                Err(FaultError::BadFactor(factor))
            }
            Self::Reject { ratio } if !(0.0..=1.0).contains(&ratio) => {
                Err(FaultError::BadRatio(ratio))
            }
            _ => Ok(()),
        }
    }

    /// The multiplier applied to simulated latencies.
    pub fn latency_factor(&self) -> f64 {
        match *self {
            Self::Slow { factor } => factor,
            _ => 1.0,
        }
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::None => f.write_str("none"),
            Self::Slow { factor } => write!(f, "slow:{factor}"),
            Self::Error500 => f.write_str("error_500"),
            Self::DieMidStream { after_tokens } => write!(f, "die_mid_stream:{after_tokens}"),
            Self::Dead => f.write_str("dead"),
            Self::Reject { ratio } => write!(f, "reject:{ratio}"),
        }
    }
}

impl FromStr for Fault {
    type Err = FaultError;

    /// Parses `MODE[:PARAM]`, the form used on the command line.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (mode, param) = match text.split_once(':') {
            Some((mode, param)) => (mode.trim(), Some(param.trim())),
            None => (text, None),
        };
        fn parse<T: FromStr>(mode: &'static str, value: &str) -> Result<T, FaultError> {
            value.parse().map_err(|_| FaultError::BadParameter {
                mode,
                value: value.to_owned(),
            })
        }
        let no_param = |fault: Fault, mode: &'static str| match param {
            Some(_) => Err(FaultError::UnexpectedParameter(mode)),
            None => Ok(fault),
        };
        let fault = match mode {
            "none" => no_param(Self::None, "none")?,
            "error_500" => no_param(Self::Error500, "error_500")?,
            "dead" => no_param(Self::Dead, "dead")?,
            "slow" => Self::Slow {
                factor: param.map_or(Ok(DEFAULT_SLOW_FACTOR), |p| parse("slow", p))?,
            },
            "die_mid_stream" => Self::DieMidStream {
                after_tokens: param
                    .map_or(Ok(DEFAULT_DIE_AFTER_TOKENS), |p| parse("die_mid_stream", p))?,
            },
            "reject" => Self::Reject {
                ratio: parse("reject", param.unwrap_or(""))?,
            },
            other => return Err(FaultError::Unknown(other.to_owned())),
        };
        fault.validate()?;
        Ok(fault)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_form_round_trips() {
        for fault in [
            Fault::None,
            Fault::Slow { factor: 2.5 },
            Fault::Error500,
            Fault::DieMidStream { after_tokens: 3 },
            Fault::Dead,
            Fault::Reject { ratio: 0.25 },
        ] {
            assert_eq!(fault.to_string().parse::<Fault>(), Ok(fault));
        }
        assert_eq!("slow".parse(), Ok(Fault::Slow { factor: 10.0 }));
    }

    #[test]
    fn bad_text_is_refused() {
        assert!(matches!(
            "boom".parse::<Fault>(),
            Err(FaultError::Unknown(_))
        ));
        assert!(matches!(
            "slow:0".parse::<Fault>(),
            Err(FaultError::BadFactor(_))
        ));
        assert!(matches!(
            "reject:2".parse::<Fault>(),
            Err(FaultError::BadRatio(_))
        ));
        assert!(matches!(
            "reject".parse::<Fault>(),
            Err(FaultError::BadParameter { .. })
        ));
        assert!(matches!(
            "dead:1".parse::<Fault>(),
            Err(FaultError::UnexpectedParameter(_))
        ));
    }

    #[test]
    fn json_form_uses_a_mode_tag() -> Result<(), serde_json::Error> {
        let fault: Fault = serde_json::from_str(r#"{"mode":"die_mid_stream"}"#)?;
        assert_eq!(fault, Fault::DieMidStream { after_tokens: 2 });
        let fault: Fault = serde_json::from_str(r#"{"mode":"error_500"}"#)?;
        assert_eq!(fault, Fault::Error500);
        assert_eq!(
            serde_json::to_value(Fault::Slow { factor: 3.0 })?,
            serde_json::json!({"mode": "slow", "factor": 3.0})
        );
        Ok(())
    }
}
