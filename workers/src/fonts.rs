//! The fonts the reports and the videos are set in: DejaVu Sans 2.37 from
//! `assets/fonts/` (its licence travels with it there), built into the
//! binary so that a worker image needs no font files.

pub const REGULAR: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
pub const BOLD: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans-Bold.ttf");
