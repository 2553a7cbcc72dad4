//! Deterministic embedding vectors.
//!
//! A vector is drawn from a hash of (engine seed, model name, prompt token ids): each component
//! uniform in [-1, 1), then the whole vector scaled to unit L2 norm, so cosine similarity equals
//! the dot product as with real sentence-embedding models. The same input always yields the same
//! vector; `dimensions` truncates and renormalises (Matryoshka style).

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::hash::{combine, splitmix64, unit_interval};

/// A unit-norm vector of `dim` components for `key`.
pub(crate) fn vector(key: u64, dim: usize) -> Vec<f32> {
    let mut values: Vec<f64> = (0..dim as u64)
        .map(|index| unit_interval(splitmix64(combine(key, index))) * 2.0 - 1.0)
        .collect();
    let norm = values.iter().map(|v| v * v).sum::<f64>().sqrt();
    if norm > 0.0 {
        for value in &mut values {
            *value /= norm;
        }
    }
    values.into_iter().map(|v| v as f32).collect()
}

/// Base64 of the little-endian `f32` bytes, as OpenAI's `encoding_format: "base64"`.
pub(crate) fn to_base64(values: &[f32]) -> String {
    let bytes: Vec<u8> = values.iter().flat_map(|v| v.to_le_bytes()).collect();
    STANDARD.encode(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vectors_are_unit_norm_and_deterministic() {
        let a = vector(11, 384);
        assert_eq!(a.len(), 384);
        let norm: f64 = a
            .iter()
            .map(|v| f64::from(*v) * f64::from(*v))
            .sum::<f64>()
            .sqrt();
        assert!((norm - 1.0).abs() < 1e-5, "{norm}");
        assert_eq!(a, vector(11, 384));
        assert_ne!(a, vector(12, 384));
    }

    #[test]
    fn base64_holds_little_endian_floats() -> Result<(), base64::DecodeError> {
        let values = [1.0f32, -0.5, 0.25];
        let bytes = STANDARD.decode(to_base64(&values))?;
        let decoded: Vec<f32> = bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(decoded, values);
        Ok(())
    }
}
