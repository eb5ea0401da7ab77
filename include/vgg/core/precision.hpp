#pragma once
#include <string_view>

namespace vgg {

/// The arithmetic of a network's convolution and fully connected products, chosen per pass in
/// run_context. bf16 rounds both inputs of every product to bfloat16 (to nearest even) and
/// accumulates in fp32, as PyTorch's CPU autocast does; parameters, gradient sums, the
/// optimiser, the loss, pooling and ReLU stay fp32. It needs a CPU with AMX or AVX512_BF16
/// (kernels::bf16_supported() and best_bf16_kernel() say whether and which). Without AMX, the
/// convolutions Winograd can run stay fp32 (kernels::with_fastest_products): faster there, and exact.
enum class precision { fp32, bf16 };

constexpr std::string_view to_string(precision p) { return p == precision::bf16 ? "bf16" : "fp32"; }

} // namespace vgg
