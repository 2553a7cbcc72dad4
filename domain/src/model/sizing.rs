/// Recommended data-volume size in GB for a model of `parameter_count` parameters.
///
/// The predecessor's table: up to 1B 50 GB, 1-2B 70, 7-8B 100, 12-14B 120, 24-32B 180,
/// 70-72B 450. Sizes between two rows take the next row up (a 3B model gets the 7-8B volume),
/// so a bigger model never gets a smaller volume. Published sizes overshoot their names
/// (Llama 3.1 8B has 8.03B parameters, Qwen 2.5 32B has 32.8B), so each row's upper bound has
/// 10% of tolerance. Beyond that the volume follows the weights:
/// two bytes per parameter (bf16) with 50% headroom for the image cache and conversions,
/// rounded up to 10 GB.
pub fn recommended_data_volume_gb(parameter_count: u64) -> u32 {
    // Upper bound of each row in units of 100M parameters: nominal size + 10%.
    const ROWS: [(u64, u32); 6] = [
        (11, 50),
        (22, 70),
        (88, 100),
        (154, 120),
        (352, 180),
        (792, 450),
    ];
    const B: u64 = 1_000_000_000;
    if let Some((_, gb)) = ROWS
        .iter()
        .find(|(bound, _)| parameter_count <= bound * 100_000_000)
    {
        return *gb;
    }
    let gb = parameter_count.div_ceil(B) * 3;
    u32::try_from(gb.div_ceil(10) * 10)
        .unwrap_or(u32::MAX)
        .max(450)
}

#[cfg(test)]
mod tests {
    use super::recommended_data_volume_gb as size;

    const B: u64 = 1_000_000_000;

    #[test]
    fn follows_the_predecessor_table_at_each_row() {
        assert_eq!(size(500_000_000), 50);
        assert_eq!(size(B), 50);
        assert_eq!(size(1_500_000_000), 70);
        assert_eq!(size(7 * B), 100);
        assert_eq!(size(8_030_000_000), 100);
        assert_eq!(size(12 * B), 120);
        assert_eq!(size(14 * B), 120);
        assert_eq!(size(24 * B), 180);
        assert_eq!(size(32 * B), 180);
        assert_eq!(size(70 * B), 450);
        assert_eq!(size(72 * B), 450);
    }

    #[test]
    fn published_sizes_slightly_above_their_name_stay_in_their_row() {
        assert_eq!(size(14_800_000_000), 120);
        assert_eq!(size(32_800_000_000), 180);
        assert_eq!(size(72_700_000_000), 450);
    }

    #[test]
    fn sizes_between_rows_take_the_next_row_up() {
        assert_eq!(size(3 * B), 100);
        assert_eq!(size(10 * B), 120);
        assert_eq!(size(46_700_000_000), 450);
    }

    #[test]
    fn very_large_models_get_room_for_their_weights() {
        assert_eq!(size(405 * B), 1220);
        assert_eq!(size(141 * B), 450);
        assert_eq!(size(200 * B), 600);
    }

    #[test]
    fn a_bigger_model_never_gets_a_smaller_volume() {
        let mut last = 0;
        for p in (0..500).map(|i| i * B / 2) {
            let s = size(p);
            assert!(s >= last, "{p} parameters got {s} GB after {last} GB");
            last = s;
        }
    }
}
