//! The numbers llmlingua computes with numpy, reproduced bit for bit: its word probabilities are numpy
//! `float32` scalars, except the forced values (`1.0`, `0.0`), which are Python floats; numpy sums and
//! divides them in `float32`, and `np.percentile` of a list runs in `float32` when every element is a
//! `float32` but in `float64` as soon as one Python float is among them.

/// A probability as llmlingua holds it: its value, and whether it is a Python float (`f64`) rather
/// than a numpy `float32`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Prob {
    pub value: f32,
    pub python: bool,
}

impl Prob {
    /// A numpy `float32` (a model output).
    pub fn f32(value: f32) -> Self {
        Self { value, python: false }
    }

    /// A Python float (a forced value: always exactly `1.0` or `0.0`, so `f32` holds it exactly).
    pub fn python(value: f32) -> Self {
        Self { value, python: true }
    }

    pub fn as_f64(self) -> f64 {
        f64::from(self.value)
    }
}

/// `sum(p) / len(p)` over a non-empty list: numpy adds a Python number and a `float32` in `float32`.
pub fn mean(probs: &[Prob]) -> Prob {
    let sum = probs.iter().fold(0f32, |acc, p| acc + p.value);
    Prob { value: sum / probs.len() as f32, python: probs.iter().all(|p| p.python) }
}

/// `np.percentile(values, q)` with the default linear method, for an integer `q` in 0..=100, in the
/// dtype numpy picks for the list; `None` for an empty list (where numpy raises).
pub fn percentile(values: &[Prob], q: i64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let n = values.len();
    let quantile = q as f64 / 100.0;
    let virtual_index = (n - 1) as f64 * quantile;
    let (prev, next) = match virtual_index >= (n - 1) as f64 {
        true => (n - 1, n - 1),
        false => {
            let floor = virtual_index.floor();
            (floor as usize, floor as usize + 1)
        }
    };
    let gamma = virtual_index - prev as f64;
    match values.iter().any(|p| p.python) {
        true => {
            let mut sorted: Vec<f64> = values.iter().map(|p| p.as_f64()).collect();
            sorted.sort_by(f64::total_cmp);
            let (a, b) = (sorted[prev], sorted[next]);
            let diff = b - a;
            Some(if gamma >= 0.5 { b - diff * (1.0 - gamma) } else { a + diff * gamma })
        }
        false => {
            let mut sorted: Vec<f32> = values.iter().map(|p| p.value).collect();
            sorted.sort_by(f32::total_cmp);
            let (a, b) = (sorted[prev], sorted[next]);
            let diff = b - a;
            // numpy casts the Python-float weight to float32 (weak promotion) and lerps in float32.
            let value = if gamma >= 0.5 { b - diff * (1.0 - gamma) as f32 } else { a + diff * gamma as f32 };
            Some(f64::from(value))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v: Vec<Prob> = [0.1f32, 0.4, 0.2, 0.3].iter().map(|&x| Prob::f32(x)).collect();
        // np.percentile([np.float32(x) for x in [.1, .4, .2, .3]], 51) == np.float32(0.25300002)
        assert_eq!(percentile(&v, 51), Some(0.25300002098083496));
        assert_eq!(percentile(&v, 100), Some(f64::from(0.4f32)));
        assert_eq!(percentile(&v, 0), Some(f64::from(0.1f32)));
        let mixed = [Prob::f32(0.1), Prob::python(1.0)];
        // np.percentile([np.float32(.1), 1.0], 50) == np.float64(0.5500000007450581)
        assert_eq!(percentile(&mixed, 50), Some(0.5500000007450581));
        assert_eq!(percentile(&[], 50), None);
    }

    #[test]
    fn mean_is_float32_unless_all_python() {
        let m = mean(&[Prob::python(1.0), Prob::f32(0.25)]);
        assert_eq!(m, Prob::f32(0.625));
        assert_eq!(mean(&[Prob::python(1.0)]), Prob::python(1.0));
    }
}
