#pragma once
#include <array>
#include <cstddef>
#include <ostream>
#include <sstream>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>

namespace vgg {

/// One line of a model summary: the layer's name, its per-sample output shape and how many
/// parameters it holds.
struct summary_row {
    std::string_view name;
    std::array<std::size_t, 3> output_dims{};
    std::size_t output_rank = 0;
    std::size_t parameters = 0;
};

namespace detail {
template <class Layer>
constexpr summary_row summary_row_of()
{
    summary_row row{Layer::name, {}, Layer::output_shape::rank, Layer::parameter_count};
    for (std::size_t i = 0; i < Layer::output_shape::rank; ++i)
        row.output_dims[i] = Layer::output_shape::dims[i];
    return row;
}
template <class Net, std::size_t... I>
constexpr auto summary_rows(std::index_sequence<I...>)
{
    return std::array<summary_row, sizeof...(I)>{
        summary_row_of<std::remove_cvref_t<decltype(std::declval<Net&>().template layer<I>())>>()...};
}
} // namespace detail

/// The top-level layers of a network with their output shapes and parameter counts,
/// computed at compile time.
template <class Net>
constexpr auto summary()
{
    return detail::summary_rows<Net>(std::make_index_sequence<Net::layer_count>{});
}

/// Writes "[batch, d0, d1, ...]".
inline void print_shape(std::ostream& out, std::size_t batch, const summary_row& row)
{
    out << '[' << batch;
    for (std::size_t i = 0; i < row.output_rank; ++i)
        out << ", " << row.output_dims[i];
    out << ']';
}

/// Prints the summary as a table: layer, output shape for `batch` samples, parameters.
template <class Net>
void print_summary(std::ostream& out, std::size_t batch = 1)
{
    constexpr auto rows = summary<Net>();
    std::size_t total = 0;
    out << "layer        output shape            parameters\n";
    for (std::size_t i = 0; i < rows.size(); ++i) {
        const auto& row = rows[i];
        out << i << ' ' << row.name;
        for (std::size_t pad = std::to_string(i).size() + 1 + row.name.size(); pad < 13; ++pad)
            out << ' ';
        std::ostringstream shape_text;
        print_shape(shape_text, batch, row);
        out << shape_text.str();
        for (std::size_t pad = shape_text.str().size(); pad < 24; ++pad)
            out << ' ';
        out << row.parameters << '\n';
        total += row.parameters;
    }
    out << "total parameters: " << total << '\n';
}

} // namespace vgg
