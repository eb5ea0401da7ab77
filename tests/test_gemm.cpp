#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <vector>

#include <vgg/core/rng.hpp>
#include <vgg/kernels/gemm.hpp>
#include <vgg/kernels/im2col.hpp>

#include "cpu_skip.hpp"

using namespace vgg;
using namespace vgg::kernels;
using vgg::testing::skip_unless_runs;

namespace {

std::vector<float> random_values(std::size_t count, rng& random)
{
    std::vector<float> values(count);
    for (auto& v : values)
        v = random.uniform(-1.f, 1.f);
    return values;
}

/// Largest |c - (c0 + a b)| over the result, relative to the sum of |a b| terms (the scale
/// of fp32 rounding), with the products summed in double after `round` is applied to every
/// operand value (the identity for fp32, rounding to bf16 for the bf16 kernels).
template <class Round>
double relative_error(std::size_t rows, std::size_t columns, std::size_t depth, matrix_operand a, matrix_operand b,
                      const std::vector<float>& c0, const std::vector<float>& c, std::size_t ldc, Round round)
{
    double worst = 0;
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < columns; ++j) {
            double sum = c0[i * ldc + j], scale = std::abs(sum);
            for (std::size_t p = 0; p < depth; ++p) {
                const double product = double(round(a(i, p))) * round(b(p, j));
                sum += product;
                scale += std::abs(product);
            }
            worst = std::max(worst, std::abs(c[i * ldc + j] - sum) / (scale + 1e-30));
        }
    return worst;
}

struct gemm_sizes {
    std::vector<std::size_t> rows, columns, depths;
};

/// multiply(rows, columns, depth, a, b, c, ldc, update) against the definition for every
/// combination of `sizes`, both updates and all four transposes; the padding of c between rows
/// must stay untouched.
template <class Multiply, class Round>
void check_against_definition(const gemm_sizes& sizes, Multiply multiply, Round round)
{
    rng random(11);
    for (std::size_t rows : sizes.rows)
        for (std::size_t columns : sizes.columns)
            for (std::size_t depth : sizes.depths)
                for (int transposes = 0; transposes < 4; ++transposes)
                    for (auto update : {gemm_update::overwrite, gemm_update::accumulate}) {
                        CAPTURE(rows);
                        CAPTURE(columns);
                        CAPTURE(depth);
                        CAPTURE(transposes);
                        CAPTURE(int(update));
                        const bool a_transposed = transposes & 1, b_transposed = transposes & 2;
                        // Stored with one spare column so leading dimensions differ from the sizes.
                        const auto a_values = random_values((rows + 1) * (depth + 1), random);
                        const auto b_values = random_values((depth + 1) * (columns + 1), random);
                        const matrix_operand a = a_transposed ? row_major(a_values.data(), rows + 1).transposed()
                                                              : row_major(a_values.data(), depth + 1);
                        const matrix_operand b = b_transposed ? row_major(b_values.data(), depth + 1).transposed()
                                                              : row_major(b_values.data(), columns + 1);
                        const std::size_t ldc = columns + 3;
                        auto c = random_values(rows * ldc, random);
                        auto expected_start = c;
                        if (update == gemm_update::overwrite)
                            for (std::size_t i = 0; i < rows; ++i)
                                for (std::size_t j = 0; j < columns; ++j)
                                    expected_start[i * ldc + j] = 0.f;
                        const auto before = c;
                        multiply(rows, columns, depth, a, b, c.data(), ldc, update);
                        CHECK(relative_error(rows, columns, depth, a, b, expected_start, c, ldc, round) < 1e-5);
                        bool padding_kept = true;
                        for (std::size_t i = 0; i < rows; ++i)
                            for (std::size_t j = columns; j < ldc; ++j)
                                padding_kept = padding_kept && c[i * ldc + j] == before[i * ldc + j];
                        CHECK(padding_kept);
                    }
}

/// The bf16 kernel `kernel` against the definition on bf16-rounded operands, at sizes around its
/// 16-row and 16-column panels, its 32-deep depth steps and its depth and column blocks.
void check_bf16_kernel(bf16_kernel kernel)
{
    skip_unless_runs(kernel);
    const gemm_sizes sizes{{1, 15, 16, 17, 33, 2 * bf16_panel + dpbf16_rows + 1},
                           {1, 16, 17, 3 * bf16_panel + 1, bf16_column_block + 17},
                           {0, 1, 31, 33, bf16_depth_block + 5}};
    check_against_definition(
        sizes,
        [&](std::size_t rows, std::size_t columns, std::size_t depth, matrix_operand a, matrix_operand b, float* c,
            std::size_t ldc, gemm_update update) { gemm_bf16(kernel, rows, columns, depth, a, b, c, ldc, update); },
        [](float v) { return round_to_bf16(v); });

    // A right operand with no unit stride (every other column of a wider matrix).
    rng random(13);
    const std::size_t rows = 17, columns = 20, depth = 40;
    const auto a_values = random_values(rows * depth, random), b_values = random_values(depth * 2 * columns, random);
    const matrix_operand a = row_major(a_values.data(), depth), b{b_values.data(), 2 * columns, 2};
    std::vector<float> c(rows * columns, 0.f);
    gemm_bf16(kernel, rows, columns, depth, a, b, c.data(), columns, gemm_update::overwrite);
    CHECK(relative_error(rows, columns, depth, a, b, std::vector<float>(c.size(), 0.f), c, columns,
                         [](float v) { return round_to_bf16(v); }) < 1e-5);
}

} // namespace

TEST_CASE("packed gemm equals the definition for every edge of its blocking, both updates and all transposes")
{
    // Sizes around the register tile (edge tiles of every width), the row, depth and column
    // blocks, and 0 and 1.
    const gemm_sizes sizes{{1, micro_rows - 1, micro_rows + 1, gemm_row_block + 3},
                           {1, micro_columns - 1, micro_columns, micro_columns + float_batch::size + 1,
                            2 * micro_columns + 5, gemm_column_block + 7},
                           {0, 1, 9, gemm_depth_block, gemm_depth_block + 1}};
    check_against_definition(
        sizes,
        [](std::size_t rows, std::size_t columns, std::size_t depth, matrix_operand a, matrix_operand b, float* c,
           std::size_t ldc, gemm_update update) { gemm(rows, columns, depth, a, b, c, ldc, update); },
        [](float v) { return v; });
}

TEST_CASE("bf16 rounding is to nearest even, keeps NaN and infinities and flushes subnormals to zero")
{
    CHECK(round_to_bf16(1.f) == 1.f);
    // 1 + 2^-8 lies halfway between bf16's 1 and 1 + 2^-7: even wins (1); 1 + 3 * 2^-8 rounds up.
    CHECK(round_to_bf16(1.f + 0x1p-8f) == 1.f);
    CHECK(round_to_bf16(1.f + 3 * 0x1p-8f) == 1.f + 0x1p-6f);
    CHECK(round_to_bf16(1.f + 0x1p-8f + 0x1p-20f) == 1.f + 0x1p-7f);
    CHECK(round_to_bf16(-3.f) == -3.f);
    CHECK(std::isnan(round_to_bf16(std::nanf(""))));
    CHECK(round_to_bf16(INFINITY) == INFINITY);
    CHECK(round_to_bf16(0x1p-130f) == 0.f);
    CHECK(std::signbit(round_to_bf16(-0x1p-130f)));
    CHECK(round_to_bf16(3.4e38f) == INFINITY); // past bf16's largest finite value

    // The SIMD rounding (Linear's small-batch path) agrees bit for bit, special values included.
    rng random(2);
    std::vector<float> values{1.f + 0x1p-8f, 1.f + 3 * 0x1p-8f, -1.f - 0x1p-8f, 0x1p-130f, -0x1p-130f, INFINITY,
                              -INFINITY,     std::nanf(""),     3.4e38f,        -0.f,      0x1p-126f};
    while (values.size() % float_batch::size != 0 || values.size() < 4 * float_batch::size)
        values.push_back(random.uniform(-1e3f, 1e3f));
    bool same = true;
    for (std::size_t i = 0; i < values.size(); i += float_batch::size) {
        alignas(64) float rounded[float_batch::size];
        kernels::round_to_bf16(float_batch::load_unaligned(values.data() + i)).store_aligned(rounded);
        for (std::size_t k = 0; k < float_batch::size; ++k)
            same = same && std::bit_cast<std::uint32_t>(rounded[k]) ==
                               std::bit_cast<std::uint32_t>(round_to_bf16(values[i + k]));
    }
    CHECK(same);
}

TEST_CASE("the AMX bf16 gemm equals the definition on bf16-rounded operands") { check_bf16_kernel(bf16_kernel::amx); }

TEST_CASE("the AVX512_BF16 gemm equals the definition on bf16-rounded operands")
{
    check_bf16_kernel(bf16_kernel::avx512_bf16);
}

namespace {

/// gemm_unpacked on random operands against a double-precision sum.
void check_unpacked(std::size_t rows, std::size_t depth, std::size_t columns, bool accumulate, rng& random)
{
    CAPTURE(rows);
    CAPTURE(columns);
    CAPTURE(depth);
    CAPTURE(accumulate);
    // a is stored depth x rows, b depth x columns, as gemm_operands says.
    aligned_vector<float> a(depth * rows), b(depth * columns), c(rows * columns);
    for (auto* values : {&a, &b, &c})
        for (auto& v : *values)
            v = random.uniform(-1.f, 1.f);
    const auto c0 = c;
    gemm_unpacked(rows, depth, columns, {a.data(), rows, b.data(), columns, c.data(), columns, accumulate});
    double worst = 0;
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < columns; ++j) {
            double sum = accumulate ? c0[i * columns + j] : 0.0;
            for (std::size_t p = 0; p < depth; ++p)
                sum += double(a[p * rows + i]) * b[p * columns + j];
            worst = std::max(worst, std::abs(c[i * columns + j] - sum));
        }
    CHECK(worst < 1e-5);
}

} // namespace

TEST_CASE("the unpacked micro-kernel driver handles row tails and every column tail")
{
    rng random(5);
    for (std::size_t rows : {std::size_t{1}, micro_rows - 1, micro_rows, 2 * micro_rows + 3})
        for (std::size_t vectors = 1; vectors <= 2 * micro_vectors + 1; ++vectors)
            for (std::size_t depth : {1, 7, 40})
                for (bool accumulate : {false, true})
                    check_unpacked(rows, depth, vectors * float_batch::size, accumulate, random);
}

TEST_CASE("the unpacked micro-kernel driver runs row blocks outermost for a c over unpacked_rows_outer_bytes")
{
    // c just over unpacked_rows_outer_bytes, with a row tail and a column tail.
    const std::size_t columns = 8 * micro_columns + float_batch::size;
    const std::size_t rows = (unpacked_rows_outer_bytes / (columns * sizeof(float)) / micro_rows + 1) * micro_rows + 3;
    REQUIRE(rows * columns * sizeof(float) > unpacked_rows_outer_bytes);
    rng random(6);
    for (bool accumulate : {false, true})
        check_unpacked(rows, 5, columns, accumulate, random);
}

TEST_CASE("the packed-panel micro-kernel driver equals the definition in either order, over every depth block edge")
{
    rng random(7);
    for (const panel_order order : {panel_order::depth_blocks, panel_order::whole_panels})
        for (std::size_t rows : {micro_rows, 3 * micro_rows})
            for (std::size_t depth : {std::size_t{1}, std::size_t{7}, panel_depth_block, 2 * panel_depth_block + 5})
                for (std::size_t vectors = 1; vectors <= 2 * micro_vectors + 1; ++vectors) {
                    CAPTURE(order == panel_order::whole_panels);
                    CAPTURE(rows);
                    CAPTURE(depth);
                    CAPTURE(vectors);
                    // Rows of b and of c a batch longer than the columns, as the Winograd drivers' are.
                    const std::size_t columns = vectors * float_batch::size, step = columns + float_batch::size;
                    const auto matrix = random_values(rows * depth, random); // row-major, rows x depth
                    aligned_vector<float> panels(rows * depth), b(depth * step), c(rows * step, std::nanf(""));
                    for (std::size_t r = 0; r < rows; ++r)
                        for (std::size_t p = 0; p < depth; ++p)
                            panels[r / micro_rows * micro_rows * depth + p * micro_rows + r % micro_rows] =
                                matrix[r * depth + p];
                    for (auto& v : b)
                        v = random.uniform(-1.f, 1.f);
                    gemm_panels(rows, depth, columns, panels.data(), b.data(), step, c.data(), step, order);
                    const double tolerance = 1e-6 * double(depth + 8);
                    std::size_t wrong = 0; // NaN counts: c starts as NaN, so every value must be written
                    for (std::size_t i = 0; i < rows; ++i)
                        for (std::size_t j = 0; j < columns; ++j) {
                            double sum = 0;
                            for (std::size_t p = 0; p < depth; ++p)
                                sum += double(matrix[i * depth + p]) * b[p * step + j];
                            if (!(std::abs(c[i * step + j] - sum) <= tolerance))
                                ++wrong;
                        }
                    CHECK(wrong == 0);
                }
}

namespace {

/// gemm_bf16 reading im2col_3x3 from the image (and its transpose) gives exactly what it gives on
/// the stored column matrix: the same values are packed, whatever the image's edges and runs.
void check_image_columns(bf16_kernel kernel)
{
    skip_unless_runs(kernel);
    struct image_size {
        std::size_t channels, height, width;
    };
    rng random(3);
    for (const image_size s :
         {image_size{1, 5, 7}, image_size{2, 14, 14}, image_size{3, 3, 20}, image_size{2, 17, 16}}) {
        CAPTURE(s.channels);
        CAPTURE(s.height);
        CAPTURE(s.width);
        const std::size_t pixels = s.height * s.width, patch = s.channels * 9, rows = 5;
        const auto image = random_values(s.channels * pixels, random);
        std::vector<float> columns(patch * pixels);
        im2col_3x3(image.data(), s.channels, s.height, s.width, columns.data());
        const image_columns implicit{image.data(), s.channels, s.height, s.width};
        // c = w * im2col(image): the forward pass.
        const auto w = random_values(rows * patch, random);
        std::vector<float> from_image(rows * pixels), from_columns(rows * pixels);
        gemm_bf16(kernel, rows, pixels, patch, row_major(w.data(), patch), implicit, from_image.data(), pixels,
                  gemm_update::overwrite);
        gemm_bf16(kernel, rows, pixels, patch, row_major(w.data(), patch), row_major(columns.data(), pixels),
                  from_columns.data(), pixels, gemm_update::overwrite);
        CHECK(from_image == from_columns);
        // c += g * im2col(image)^T: the weight gradient.
        const auto g = random_values(rows * pixels, random);
        std::vector<float> gradient_image(rows * patch, 1.f), gradient_columns(rows * patch, 1.f);
        gemm_bf16(kernel, rows, patch, pixels, row_major(g.data(), pixels), implicit.transposed(),
                  gradient_image.data(), patch, gemm_update::accumulate);
        gemm_bf16(kernel, rows, patch, pixels, row_major(g.data(), pixels),
                  row_major(columns.data(), pixels).transposed(), gradient_columns.data(), patch,
                  gemm_update::accumulate);
        CHECK(gradient_image == gradient_columns);
    }
}

} // namespace

TEST_CASE("the AMX bf16 gemm reads a convolution's columns from the image as im2col would store them")
{
    check_image_columns(bf16_kernel::amx);
}

TEST_CASE("the AVX512_BF16 gemm reads a convolution's columns from the image as im2col would store them")
{
    check_image_columns(bf16_kernel::avx512_bf16);
}
