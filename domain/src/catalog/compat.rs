use super::InstanceTypeState;

/// The compatibility rule: a model fits an instance type when the type's total VRAM (all GPUs
/// together) is at least what the model requires.
pub fn fits(required_vram_gb: u32, instance_type: &InstanceTypeState) -> bool {
    instance_type.total_vram_gb() >= required_vram_gb
}

/// Formats integer micro-euros as a decimal string with six places (`750000` -> `"0.750000"`),
/// with integer arithmetic only, so no amount is ever rounded through a float.
pub fn format_micro_eur(micro: i64) -> String {
    let sign = if micro < 0 { "-" } else { "" };
    let abs = micro.unsigned_abs();
    format!("{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
}

#[cfg(test)]
mod tests {
    use super::format_micro_eur as eur;

    #[test]
    fn micro_euros_print_as_exact_decimals() {
        assert_eq!(eur(750_000), "0.750000");
        assert_eq!(eur(1_242_600), "1.242600");
        assert_eq!(eur(23_030_000), "23.030000");
        assert_eq!(eur(1), "0.000001");
        assert_eq!(eur(0), "0.000000");
        assert_eq!(eur(-1_500_000), "-1.500000");
        assert_eq!(eur(i64::MIN), "-9223372036854.775808");
    }
}
