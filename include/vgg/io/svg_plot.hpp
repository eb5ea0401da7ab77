#pragma once
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <string>
#include <utility>
#include <vector>

namespace vgg::io {

/// One line of a plot: its legend name, colour, SVG dash pattern ("" for solid) and points.
struct plot_series {
    std::string name, color, dash;
    std::vector<std::pair<double, double>> points;
};

namespace detail {

inline std::string number(double v)
{
    char text[32];
    std::snprintf(text, sizeof text, "%.4g", v);
    return text;
}

/// Round tick positions covering [low, high], about `count` of them.
inline std::vector<double> ticks(double low, double high, int count)
{
    const double raw = (high - low) / count;
    const double magnitude = std::pow(10.0, std::floor(std::log10(raw)));
    double step = magnitude;
    for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
        if (m * magnitude >= raw) {
            step = m * magnitude;
            break;
        }
    std::vector<double> out;
    for (double t = std::ceil(low / step - 1e-9) * step; t <= high + 1e-9 * step; t += step)
        out.push_back(std::abs(t) < 1e-12 ? 0.0 : t);
    return out;
}

} // namespace detail

/// A line chart in the manner of d2l's Animator: axes with grid and ticks, a label on x, one
/// polyline per series and a legend. x spans [x_low, x_high]; y fits the data.
inline std::string svg_line_plot(const std::vector<plot_series>& series, const std::string& x_label, double x_low,
                                 double x_high)
{
    constexpr double width = 480, height = 340, left = 56, right = 16, top = 16, bottom = 48;
    double y_low = std::numeric_limits<double>::infinity(), y_high = -y_low;
    for (const auto& s : series)
        for (const auto& [x, y] : s.points)
            if (std::isfinite(y)) {
                y_low = std::min(y_low, y);
                y_high = std::max(y_high, y);
            }
    if (!std::isfinite(y_low)) {
        y_low = 0;
        y_high = 1;
    }
    if (y_high - y_low < 1e-6) {
        y_low -= 0.5;
        y_high += 0.5;
    }
    const double pad = 0.05 * (y_high - y_low);
    y_low -= pad;
    y_high += pad;
    if (x_high <= x_low)
        x_high = x_low + 1;
    auto px = [&](double x) { return left + (x - x_low) / (x_high - x_low) * (width - left - right); };
    auto py = [&](double y) { return top + (y_high - y) / (y_high - y_low) * (height - top - bottom); };
    using detail::number;

    std::string svg =
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + number(width) + "\" height=\"" + number(height) +
        "\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
    for (double t : detail::ticks(x_low, x_high, 8)) {
        svg += "<line x1=\"" + number(px(t)) + "\" y1=\"" + number(top) + "\" x2=\"" + number(px(t)) + "\" y2=\"" +
               number(height - bottom) + "\" stroke=\"#e0e0e0\"/>\n";
        svg += "<text x=\"" + number(px(t)) + "\" y=\"" + number(height - bottom + 16) + "\" text-anchor=\"middle\">" +
               number(t) + "</text>\n";
    }
    for (double t : detail::ticks(y_low, y_high, 6)) {
        svg += "<line x1=\"" + number(left) + "\" y1=\"" + number(py(t)) + "\" x2=\"" + number(width - right) +
               "\" y2=\"" + number(py(t)) + "\" stroke=\"#e0e0e0\"/>\n";
        svg += "<text x=\"" + number(left - 6) + "\" y=\"" + number(py(t) + 4) + "\" text-anchor=\"end\">" + number(t) +
               "</text>\n";
    }
    svg += "<rect x=\"" + number(left) + "\" y=\"" + number(top) + "\" width=\"" + number(width - left - right) +
           "\" height=\"" + number(height - top - bottom) + "\" fill=\"none\" stroke=\"black\"/>\n";
    svg += "<text x=\"" + number((left + width - right) / 2) + "\" y=\"" + number(height - 12) +
           "\" text-anchor=\"middle\">" + x_label + "</text>\n";
    // Points outside [x_low, x_high] (d2l plots from epoch 1 on, like its Animator) are clipped.
    svg += "<clipPath id=\"plot-area\"><rect x=\"" + number(left) + "\" y=\"" + number(top) + "\" width=\"" +
           number(width - left - right) + "\" height=\"" + number(height - top - bottom) + "\"/></clipPath>\n";
    for (const auto& s : series) {
        std::string points;
        for (const auto& [x, y] : s.points)
            if (std::isfinite(y))
                points += number(px(x)) + "," + number(py(y)) + " ";
        svg += "<polyline clip-path=\"url(#plot-area)\" fill=\"none\" stroke=\"" + s.color + "\" stroke-width=\"2\"" +
               (s.dash.empty() ? "" : " stroke-dasharray=\"" + s.dash + "\"") + " points=\"" + points + "\"/>\n";
    }
    // Legend in the upper right, where the falling loss and rising accuracies rarely are.
    const double legend_x = width - right - 120, legend_y = top + 12;
    svg += "<rect x=\"" + number(legend_x - 6) + "\" y=\"" + number(legend_y - 6) + "\" width=\"124\" height=\"" +
           number(18 * double(series.size()) + 6) + "\" fill=\"white\" stroke=\"#c0c0c0\"/>\n";
    for (std::size_t i = 0; i < series.size(); ++i) {
        const double y = legend_y + 18 * double(i) + 6;
        svg += "<line x1=\"" + number(legend_x) + "\" y1=\"" + number(y) + "\" x2=\"" + number(legend_x + 28) +
               "\" y2=\"" + number(y) + "\" stroke=\"" + series[i].color + "\" stroke-width=\"2\"" +
               (series[i].dash.empty() ? "" : " stroke-dasharray=\"" + series[i].dash + "\"") + "/>\n";
        svg += "<text x=\"" + number(legend_x + 34) + "\" y=\"" + number(y + 4) + "\">" + series[i].name + "</text>\n";
    }
    return svg + "</svg>\n";
}

} // namespace vgg::io
