#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include <vgg/core/rng.hpp>
#include <vgg/kernels/gemm.hpp>

using namespace vgg;
using namespace vgg::kernels;

namespace {

std::vector<float> random_values(std::size_t count, rng& random)
{
    std::vector<float> values(count);
    for (auto& v : values)
        v = random.uniform(-1.f, 1.f);
    return values;
}

/// Largest |c - (c0 + a b)| over the result, relative to the sum of |a b| terms (the scale
/// of fp32 rounding), with the products summed in double.
double relative_error(std::size_t rows, std::size_t columns, std::size_t depth, matrix_operand a, matrix_operand b,
                      const std::vector<float>& c0, const std::vector<float>& c, std::size_t ldc)
{
    double worst = 0;
    for (std::size_t i = 0; i < rows; ++i)
        for (std::size_t j = 0; j < columns; ++j) {
            double sum = c0[i * ldc + j], scale = std::abs(sum);
            for (std::size_t p = 0; p < depth; ++p) {
                sum += double(a(i, p)) * b(p, j);
                scale += std::abs(double(a(i, p)) * b(p, j));
            }
            worst = std::max(worst, std::abs(c[i * ldc + j] - sum) / (scale + 1e-30));
        }
    return worst;
}

} // namespace

TEST_CASE("packed gemm equals the definition for every edge of its blocking, both updates and all transposes")
{
    // Sizes around the register tile, the row, depth and column blocks, and 0 and 1.
    const std::size_t row_sizes[] = {1, micro_rows - 1, micro_rows + 1, gemm_row_block + 3};
    const std::size_t column_sizes[] = {1, micro_columns - 1, micro_columns, 2 * micro_columns + 5, gemm_column_block + 7};
    const std::size_t depth_sizes[] = {0, 1, 9, gemm_depth_block, gemm_depth_block + 1};
    rng random(11);
    for (std::size_t rows : row_sizes)
        for (std::size_t columns : column_sizes)
            for (std::size_t depth : depth_sizes)
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
                        gemm(rows, columns, depth, a, b, c.data(), ldc, update);
                        CHECK(relative_error(rows, columns, depth, a, b, expected_start, c, ldc) < 1e-5);
                        // Padding between rows of c is never written.
                        bool padding_kept = true;
                        for (std::size_t i = 0; i < rows; ++i)
                            for (std::size_t j = columns; j < ldc; ++j)
                                padding_kept = padding_kept && c[i * ldc + j] == before[i * ldc + j];
                        CHECK(padding_kept);
                    }
}

TEST_CASE("the unpacked micro-kernel driver handles row tails and every column tail")
{
    constexpr std::size_t lanes = float_batch::size;
    rng random(5);
    for (std::size_t rows : {std::size_t{1}, micro_rows - 1, micro_rows, 2 * micro_rows + 3})
        for (std::size_t vectors = 1; vectors <= 2 * micro_vectors + 1; ++vectors)
            for (std::size_t depth : {1, 7, 40})
                for (bool accumulate : {false, true}) {
                    CAPTURE(rows);
                    CAPTURE(vectors);
                    CAPTURE(depth);
                    CAPTURE(accumulate);
                    const std::size_t columns = vectors * lanes;
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
}
