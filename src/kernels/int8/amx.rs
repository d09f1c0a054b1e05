//! AMX-INT8 (Sapphire Rapids and later Xeons): `tdpbusd` multiplies a tile of 16 activation rows x 64
//! unsigned bytes (`x + 128`, as the VNNI paths) by a tile of 16 group rows x 16 columns of 4 signed
//! weight bytes, which is exactly a half panel's layout, into 16 x 16 i32. A call runs 32 rows x 32
//! columns as four accumulator tiles, so each loaded tile serves two products.
//!
//! Linux only: the kernel hands out the tiles' 8 KB of register state per process, on request
//! (`arch_prctl(ARCH_REQ_XCOMP_PERM)`); elsewhere [`available`] is false and the VNNI path runs.

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(super) use imp::panel_product;
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
pub(crate) use imp::{available, granted, CONFIG};

/// AMX is used on x86_64 Linux only.
#[cfg(all(target_arch = "x86_64", not(target_os = "linux")))]
pub(crate) fn available() -> bool {
    false
}

/// Never called: [`available`] is false here.
#[cfg(not(all(target_arch = "x86_64", target_os = "linux")))]
pub(super) unsafe fn panel_product(_: super::Block) {
    unreachable!("AMX kernels exist on x86_64 Linux only")
}

#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
mod imp {
    use std::arch::asm;
    use std::arch::x86_64::*;

    use super::super::{dequantise, Block, GROUP_BYTES, K_BLOCK, PANEL, ROW_TILE};

    /// Whether the CPU has AMX tiles and int8 products and the OS grants this process their state.
    pub(crate) fn available() -> bool {
        // CPUID leaf 7 (present on every CPU with AVX-512, which the caller checks first): EDX bit 24
        // AMX-TILE, bit 25 AMX-INT8.
        let edx = __cpuid_count(7, 0).edx;
        edx & (3 << 24) == 3 << 24 && granted()
    }

    /// Whether the OS grants this process the tiles' state (asked once; the grant lasts for the
    /// process). Only for CPUs with AMX-TILE.
    pub(crate) fn granted() -> bool {
        static GRANTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *GRANTED.get_or_init(|| {
            const SYS_ARCH_PRCTL: i64 = 158;
            const ARCH_REQ_XCOMP_PERM: i64 = 0x1023;
            const XFEATURE_XTILEDATA: i64 = 18;
            let ret: i64;
            // SAFETY: the arch_prctl system call with these arguments only changes the process's
            // permission; it fails (negative errno) where the kernel or the hypervisor withholds AMX.
            unsafe {
                asm!(
                    "syscall",
                    inlateout("rax") SYS_ARCH_PRCTL => ret,
                    in("rdi") ARCH_REQ_XCOMP_PERM,
                    in("rsi") XFEATURE_XTILEDATA,
                    lateout("rcx") _,
                    lateout("r11") _,
                    options(nostack),
                );
            }
            ret == 0
        })
    }

    /// Rows per A tile (and group rows per B tile).
    const ROWS: usize = ROW_TILE;

    /// Bytes per tile row: 64 k values of an activation row, or 16 columns x 4 k of a group row.
    const ROW_BYTES: usize = K_BLOCK;

    /// The tile configuration (`ldtilecfg`'s 64 bytes, palette 1): tiles 0-3 the accumulators, 4-5 two
    /// row tiles of activations, 6-7 the panel's two halves, every one 16 rows of 64 bytes.
    #[repr(C, align(64))]
    pub(crate) struct Config {
        palette: u8,
        start_row: u8,
        reserved: [u8; 14],
        colsb: [u16; 16],
        rows: [u8; 16],
    }

    pub(crate) const CONFIG: Config = {
        let (mut colsb, mut rows) = ([0u16; 16], [0u8; 16]);
        let mut tile = 0;
        while tile < 8 {
            (colsb[tile], rows[tile]) = (ROW_BYTES as u16, ROWS as u8);
            tile += 1;
        }
        Config { palette: 1, start_row: 0, reserved: [0; 14], colsb, rows }
    };

    /// # Safety
    /// AMX must be [`available`], with AVX-512 F and BW; `b` must address its extents (see [`Block`]),
    /// its rows in the unsigned form, readable to whole [`ROW_TILE`]s.
    #[target_feature(enable = "avx512f,avx512bw")]
    pub(in super::super) unsafe fn panel_product(b: Block) {
        asm!("ldtilecfg [{}]", in(reg) &CONFIG, options(nostack, readonly));
        // The accumulators start at -128 * colsum(w) (a tile load with stride 0 repeats the row), so
        // they end at the signed product.
        let mut start = [0i32; PANEL];
        let offsets = std::slice::from_raw_parts(b.offsets, PANEL);
        start.iter_mut().zip(offsets).for_each(|(s, o)| *s = -o);
        let mut r = 0;
        while r < b.rows {
            let pair = b.rows - r > ROWS;
            tile(b.rows_from(r), pair, &start);
            r += 2 * ROWS;
        }
        asm!("tilerelease", options(nostack, nomem));
    }

    /// The first 32 rows of `b` (16 unless `pair`), all of its panel's columns.
    #[target_feature(enable = "avx512f,avx512bw")]
    #[inline]
    unsafe fn tile(b: Block, pair: bool, start: &[i32; PANEL]) {
        asm!(
            "tileloadd tmm0, [{s} + {zero} * 1]",
            "tileloadd tmm1, [{s} + {zero} * 1 + 64]",
            "tileloadd tmm2, [{s} + {zero} * 1]",
            "tileloadd tmm3, [{s} + {zero} * 1 + 64]",
            s = in(reg) start.as_ptr(),
            zero = in(reg) 0usize,
            options(nostack, readonly),
        );
        let (x, stride) = (b.x, b.stride);
        let x1 = x.add(ROWS * stride);
        for block in 0..b.groups / ROWS {
            let a = x.add(block * ROW_BYTES);
            let w = b.panel.add(block * ROWS * GROUP_BYTES);
            asm!(
                "tileloadd tmm6, [{w} + {ws} * 1]",
                "tileloadd tmm7, [{w} + {ws} * 1 + 64]",
                "tileloadd tmm4, [{a} + {xs} * 1]",
                "tdpbusd tmm0, tmm4, tmm6",
                "tdpbusd tmm1, tmm4, tmm7",
                w = in(reg) w,
                ws = in(reg) GROUP_BYTES,
                a = in(reg) a,
                xs = in(reg) stride,
                options(nostack, readonly),
            );
            if pair {
                asm!(
                    "tileloadd tmm5, [{a} + {xs} * 1]",
                    "tdpbusd tmm2, tmm5, tmm6",
                    "tdpbusd tmm3, tmm5, tmm7",
                    a = in(reg) x1.add(block * ROW_BYTES),
                    xs = in(reg) stride,
                    options(nostack, readonly),
                );
            }
        }
        // 32 rows of the panel's 32 columns, each row 128 bytes.
        let mut acc = [[0i32; PANEL]; 2 * ROWS];
        let c = acc.as_mut_ptr();
        asm!(
            "tilestored [{c} + {cs} * 1], tmm0",
            "tilestored [{c} + {cs} * 1 + 64], tmm1",
            "tilestored [{d} + {cs} * 1], tmm2",
            "tilestored [{d} + {cs} * 1 + 64], tmm3",
            c = in(reg) c,
            d = in(reg) c.add(ROWS),
            cs = in(reg) PANEL * 4,
            options(nostack),
        );
        for (i, acc) in acc.iter().take(b.rows.min(2 * ROWS)).enumerate() {
            dequantise(acc, *b.sx.add(i), b.sw, b.out.add(i * b.ldc), b.cols, b.add);
        }
    }
}
