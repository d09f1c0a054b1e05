//! Which SIMD instruction sets the CPU kernels may use: detected once at run time, and capped by the
//! environment variable `KOMPRESS_CPU_KERNELS` (`auto`, `amx`, `avx512`, `avxvnni`, `avx2`, `neon` or
//! `portable`) so that the slower paths can be run and measured on a machine that has the faster ones.

use std::sync::OnceLock;

use crate::{Error, Result};

/// The variable that caps [`isa`].
pub(crate) const VARIABLE: &str = "KOMPRESS_CPU_KERNELS";

/// Instruction-set levels, lowest first. Each level's kernels need that level's features and those
/// of AVX2 (from `Avx2` up) or AVX-512 (from `Avx512` up), but not every feature of the levels below:
/// AVX-VNNI (`AvxVnni`: AVX2 with the 256-bit `vpdpbusd`, Alder Lake and later, Zen 5) is missing from
/// many AVX-512 CPUs (Ice Lake, Zen 4). So [`supported`] answers per level. `NeonDot`, the one AArch64
/// level, sits just above `Portable`: no CPU has both it and an x86 level, so an x86 cap on an AArch64
/// CPU leaves it on, and `neon` on an x86 CPU means the portable kernels.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Isa {
    /// Plain Rust that LLVM vectorises for the build's baseline (also AArch64 without the dot product,
    /// and every other CPU).
    Portable,
    /// AArch64 NEON with the dot-product extension (`sdot`; Apple M1 and later, Neoverse N1 and later).
    NeonDot,
    /// AVX2 with FMA.
    Avx2,
    /// AVX2 with AVX-VNNI.
    AvxVnni,
    /// AVX-512 F and BW.
    Avx512,
    /// AVX-512 with VNNI (`vpdpbusd` on 512 bits).
    Avx512Vnni,
    /// AVX-512 VNNI with AMX-INT8 tiles (Sapphire Rapids and later), the OS having granted their state.
    Amx,
}

impl Isa {
    /// Every level, lowest first.
    pub(crate) const ALL: [Isa; 7] =
        [Isa::Portable, Isa::NeonDot, Isa::Avx2, Isa::AvxVnni, Isa::Avx512, Isa::Avx512Vnni, Isa::Amx];

    /// The highest level at most `self` that this CPU supports: the kernels to run under a cap.
    pub(crate) fn best_supported(self) -> Isa {
        Isa::ALL.into_iter().rev().find(|&l| l <= self && supported(l)).unwrap_or(Isa::Portable)
    }
}

/// The level the kernels run at: what the CPU has, capped by [`VARIABLE`]. A value of the variable
/// that is not understood leaves the CPU's level (and [`check_variable`] reports it at model load).
/// Callers pick their kernels with [`Isa::best_supported`] or by comparing with a level every CPU at
/// or above it has (`Avx2`, `Avx512`).
pub(crate) fn isa() -> Isa {
    static CHOSEN: OnceLock<Isa> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let cap = cap_from(std::env::var(VARIABLE).ok().as_deref()).unwrap_or(None);
        cap.map_or(detected(), |cap| cap.min(detected()))
    })
}

/// An error naming the value when [`VARIABLE`] holds something other than its values.
pub(crate) fn check_variable() -> Result<()> {
    cap_from(std::env::var(VARIABLE).ok().as_deref()).map(|_| ())
}

/// The cap a value of [`VARIABLE`] asks for (`None`: no cap).
fn cap_from(value: Option<&str>) -> Result<Option<Isa>> {
    let Some(value) = value else { return Ok(None) };
    match value.trim().to_ascii_lowercase().as_str() {
        "" | "auto" => Ok(None),
        "amx" => Ok(Some(Isa::Amx)),
        "avx512" => Ok(Some(Isa::Avx512Vnni)),
        "avxvnni" => Ok(Some(Isa::AvxVnni)),
        "avx2" => Ok(Some(Isa::Avx2)),
        "neon" => Ok(Some(Isa::NeonDot)),
        "portable" => Ok(Some(Isa::Portable)),
        _ => Err(Error::Device(format!(
            "unknown {VARIABLE} value \"{value}\" (expected auto, amx, avx512, avxvnni, avx2, neon or portable)"
        ))),
    }
}

/// The highest level this CPU supports.
pub(crate) fn detected() -> Isa {
    static DETECTED: OnceLock<Isa> = OnceLock::new();
    *DETECTED.get_or_init(|| Isa::Amx.best_supported())
}

/// Whether this CPU runs `level`'s kernels.
pub(crate) fn supported(level: Isa) -> bool {
    static LEVELS: OnceLock<[bool; Isa::ALL.len()]> = OnceLock::new();
    LEVELS.get_or_init(|| Isa::ALL.map(check))[level as usize]
}

#[cfg(target_arch = "x86_64")]
fn check(level: Isa) -> bool {
    use std::arch::is_x86_feature_detected as has;
    let avx2 = has!("avx2") && has!("fma");
    let avx512 = avx2 && has!("avx512f") && has!("avx512bw");
    match level {
        Isa::Portable => true,
        Isa::NeonDot => false,
        Isa::Avx2 => avx2,
        Isa::AvxVnni => avx2 && has!("avxvnni"),
        Isa::Avx512 => avx512,
        Isa::Avx512Vnni => avx512 && has!("avx512vnni"),
        Isa::Amx => avx512 && has!("avx512vnni") && super::int8::amx::available(),
    }
}

#[cfg(target_arch = "aarch64")]
fn check(level: Isa) -> bool {
    match level {
        Isa::Portable => true,
        Isa::NeonDot => std::arch::is_aarch64_feature_detected!("dotprod"),
        _ => false,
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn check(level: Isa) -> bool {
    level == Isa::Portable
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_variable_caps_and_rejects() {
        assert_eq!(cap_from(None).unwrap(), None);
        assert_eq!(cap_from(Some("AUTO")).unwrap(), None);
        assert_eq!(cap_from(Some("avx2")).unwrap(), Some(Isa::Avx2));
        assert_eq!(cap_from(Some("AvxVnni")).unwrap(), Some(Isa::AvxVnni));
        assert_eq!(cap_from(Some(" portable ")).unwrap(), Some(Isa::Portable));
        assert_eq!(cap_from(Some("avx512")).unwrap(), Some(Isa::Avx512Vnni));
        assert_eq!(cap_from(Some("amx")).unwrap(), Some(Isa::Amx));
        assert_eq!(cap_from(Some("NEON")).unwrap(), Some(Isa::NeonDot));
        let err = cap_from(Some("sse9")).unwrap_err().to_string();
        assert!(err.contains("KOMPRESS_CPU_KERNELS") && err.contains("\"sse9\""), "{err}");
        assert!(Isa::Portable < Isa::Avx2 && Isa::Avx512 < Isa::Avx512Vnni);
        assert!(isa() <= detected() && supported(detected()) && supported(Isa::Portable));
    }

    /// A cap picks the highest supported level under it, and a supported level's prerequisites hold.
    #[test]
    fn best_supported_respects_the_cap() {
        for cap in Isa::ALL {
            let got = cap.best_supported();
            assert!(got <= cap && supported(got), "{cap:?} -> {got:?}");
        }
        for level in Isa::ALL.into_iter().filter(|&l| supported(l) && l > Isa::Avx2) {
            assert!(supported(Isa::Avx2), "{level:?} without AVX2");
            if level >= Isa::Avx512 {
                assert!(supported(Isa::Avx512), "{level:?} without AVX-512");
            }
        }
    }
}
