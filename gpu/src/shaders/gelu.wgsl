// Exact GELU x·Φ(x) with the same erfc fit as hark-engine's CPU op
// (engine/src/ops/activation.rs, Numerical Recipes erfc, |rel err| < 1.2e-7).
fn gelu(x: f32) -> f32 {
    let a = abs(x) * 0.70710678118654752;
    let t = 1.0 / (1.0 + 0.5 * a);
    let poly = -1.2655122 + t * (1.0000237 + t * (0.37409196 + t * (0.09678418
        + t * (-0.18628806 + t * (0.27886807 + t * (-1.135204
        + t * (1.4885159 + t * (-0.82215224 + t * 0.17087277))))))));
    let erfc_a = t * exp(poly - a * a);
    if (x <= 0.0) {
        return 0.5 * x * erfc_a;
    }
    return x * (1.0 - 0.5 * erfc_a);
}
