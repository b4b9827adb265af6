//! The one program every plugin is asked to run (by `smoke`, by `conform`'s
//! compile and execute checks): `(a + b) * a` on 2x2 f32, with inputs and
//! the numbers it must give.

/// The program: `(a + b) * a` on 2x2 f32 tensors, StableHLO as MLIR text.
pub const PROGRAM: &str = r#"module @smoke {
  func.func public @main(%a: tensor<2x2xf32>, %b: tensor<2x2xf32>) -> tensor<2x2xf32> {
    %sum = stablehlo.add %a, %b : tensor<2x2xf32>
    %product = stablehlo.multiply %sum, %a : tensor<2x2xf32>
    return %product : tensor<2x2xf32>
  }
}
"#;
pub const INPUT_A: [f32; 4] = [1.0, 2.0, 3.0, 4.0];
pub const INPUT_B: [f32; 4] = [0.5, -1.0, 10.0, 0.25];
pub const DIMS: [i64; 2] = [2, 2];

/// What the program computes, evaluated here on the host.
pub fn expected() -> Vec<f32> {
    INPUT_A.iter().zip(INPUT_B).map(|(a, b)| (a + b) * a).collect()
}
