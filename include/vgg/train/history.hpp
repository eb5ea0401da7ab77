#pragma once
#include <cmath>
#include <filesystem>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "vgg/io/error.hpp"
#include "vgg/io/svg_plot.hpp"

namespace vgg {

/// One point of d2l's Animator: train loss and accuracy several times an epoch, test accuracy
/// at the end of each (NaN where a value is not measured at that point).
struct metric_point {
    double epoch, train_loss, train_acc, test_acc;
};

/// The points as a JSON array of [epoch, loss, train acc, test acc] (null for NaN), as
/// checkpoints keep them.
inline nlohmann::json history_to_json(const std::vector<metric_point>& history)
{
    auto out = nlohmann::json::array();
    auto cell = [](double v) { return std::isnan(v) ? nlohmann::json() : nlohmann::json(v); };
    for (const auto& p : history)
        out.push_back({cell(p.epoch), cell(p.train_loss), cell(p.train_acc), cell(p.test_acc)});
    return out;
}

/// Reads what history_to_json wrote; anything else is an error naming `source`.
inline std::vector<metric_point> history_from_json(const std::string& text, const std::filesystem::path& source)
{
    const auto json = nlohmann::json::parse(text, nullptr, false);
    if (json.is_discarded() || !json.is_array())
        throw io::file_error(source, "its history metadata is not a JSON array");
    std::vector<metric_point> history;
    auto value = [](const nlohmann::json& v) { return v.is_number() ? v.get<double>() : NAN; };
    for (const auto& p : json) {
        if (!p.is_array() || p.size() != 4)
            throw io::file_error(source, "its history metadata has a malformed point");
        history.push_back({value(p[0]), value(p[1]), value(p[2]), value(p[3])});
    }
    return history;
}

/// metrics.csv: epoch,train_loss,train_acc,test_acc with empty cells where not measured.
inline std::string history_csv(const std::vector<metric_point>& history)
{
    std::ostringstream out;
    out << "epoch,train_loss,train_acc,test_acc\n";
    auto cell = [&](double v) {
        if (!std::isnan(v))
            out << v;
    };
    for (const auto& p : history) {
        out << p.epoch << ',';
        cell(p.train_loss);
        out << ',';
        cell(p.train_acc);
        out << ',';
        cell(p.test_acc);
        out << '\n';
    }
    return out.str();
}

/// The curves as d2l's Animator draws them ('b-', 'm--', 'g-.'), as an SVG document.
inline std::string history_svg(const std::vector<metric_point>& history, std::size_t epochs)
{
    std::vector<io::plot_series> series{
        {"train loss", "#1f77b4", "", {}}, {"train acc", "#bf00bf", "6,4", {}}, {"test acc", "#008000", "8,3,2,3", {}}};
    for (const auto& p : history) {
        if (!std::isnan(p.train_loss))
            series[0].points.emplace_back(p.epoch, p.train_loss);
        if (!std::isnan(p.train_acc))
            series[1].points.emplace_back(p.epoch, p.train_acc);
        if (!std::isnan(p.test_acc))
            series[2].points.emplace_back(p.epoch, p.test_acc);
    }
    return io::svg_line_plot(series, "epoch", 1, double(epochs));
}

} // namespace vgg
