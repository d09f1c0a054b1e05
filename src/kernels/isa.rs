//! Which SIMD instruction sets the CPU kernels may use: detected once at run time, and capped by the
//! environment variable `KOMPRESS_CPU_KERNELS` (`auto`, `avx512`, `avx2` or `portable`) so that the
//! slower paths can be run and measured on a machine that has the faster ones.

use std::sync::OnceLock;

use crate::{Error, Result};

/// The variable that caps [`isa`].
pub(crate) const VARIABLE: &str = "KOMPRESS_CPU_KERNELS";

/// Instruction-set levels, each including the ones before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// Plain Rust that LLVM vectorises for the build's baseline (also every non-x86 CPU).
    Portable,
    /// AVX2 with FMA.
    Avx2,
    /// AVX-512 F and BW.
    Avx512,
    /// AVX-512 with VNNI (`vpdpbusd`).
    Avx512Vnni,
}

impl Isa {
    /// Every level, lowest first.
    #[cfg(test)]
    pub(crate) const ALL: [Isa; 4] = [Isa::Portable, Isa::Avx2, Isa::Avx512, Isa::Avx512Vnni];
}

/// The level the kernels run at: what the CPU has, capped by [`VARIABLE`]. A value of the variable
/// that is not understood leaves the CPU's level (and [`check_variable`] reports it at model load).
pub(crate) fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let cap = cap_from(std::env::var(VARIABLE).ok().as_deref()).unwrap_or(None);
        cap.map_or(detected(), |cap| cap.min(detected()))
    })
}

/// An error naming the value when [`VARIABLE`] holds something other than its four values.
pub(crate) fn check_variable() -> Result<()> {
    cap_from(std::env::var(VARIABLE).ok().as_deref()).map(|_| ())
}

/// The cap a value of [`VARIABLE`] asks for (`None`: no cap).
fn cap_from(value: Option<&str>) -> Result<Option<Isa>> {
    let Some(value) = value else { return Ok(None) };
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(None),
        "avx512" => Ok(Some(Isa::Avx512Vnni)),
        "avx2" => Ok(Some(Isa::Avx2)),
        "portable" => Ok(Some(Isa::Portable)),
        _ => Err(Error::Device(format!(
            "unknown {VARIABLE} value \"{value}\" (expected auto, avx512, avx2 or portable)"
        ))),
    }
}

/// The highest level this CPU supports.
pub(crate) fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(detect)
}

#[cfg(target_arch = "x86_64")]
fn detect() -> Isa {
    use std::arch::is_x86_feature_detected as has;
    match () {
        _ if has!("avx512f") && has!("avx512bw") && has!("avx512vnni") => Isa::Avx512Vnni,
        _ if has!("avx512f") && has!("avx512bw") => Isa::Avx512,
        _ if has!("avx2") && has!("fma") => Isa::Avx2,
        _ => Isa::Portable,
    }
}

#[cfg(not(target_arch = "x86_64"))]
fn detect() -> Isa {
    Isa::Portable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_caps_and_rejects() {
        assert_eq!(cap_from(None).unwrap(), None);
        assert_eq!(cap_from(Some("AUTO")).unwrap(), None);
        assert_eq!(cap_from(Some("avx2")).unwrap(), Some(Isa::Avx2));
        assert_eq!(cap_from(Some(" portable ")).unwrap(), Some(Isa::Portable));
        assert_eq!(cap_from(Some("avx512")).unwrap(), Some(Isa::Avx512Vnni));
        let err = cap_from(Some("sse9")).unwrap_err().to_string();
        assert!(err.contains("KOMPRESS_CPU_KERNELS") && err.contains("\"sse9\""), "{err}");
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx512 < Isa::Avx512Vnni);
        assert!(isa() <= detected());
    }
}
