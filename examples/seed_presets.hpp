#pragma once
// The seed's network at the presets of vgg_train (--resize, --ratio), in one place for every
// program that builds it: vgg_train, vgg_predict, vgg_convert and vgg_bench.
#include <cstddef>
#include <string>

#include <CLI/CLI.hpp>
#include <vgg/vgg.hpp>

namespace vgg_examples {

/// The seed's VGG-11 with its channels divided by Ratio, for 1 x Resize x Resize images, 10 classes.
template <std::size_t Resize, std::size_t Ratio>
using seed_network = vgg::VGG<vgg::shape<1, Resize, Resize>, vgg::small_conv_arch<vgg::vgg11_arch, Ratio>, 10>;

/// --resize and --ratio, each held to the presets' values.
inline void add_seed_preset_options(CLI::App& app, std::size_t& resize, std::size_t& ratio,
                                    const std::string& resize_help, const std::string& ratio_help)
{
    app.add_option("--resize", resize, resize_help)->check(CLI::IsMember({224, 64, 32}))->capture_default_str();
    app.add_option("--ratio", ratio, ratio_help)->check(CLI::IsMember({4, 1}))->capture_default_str();
}

/// run.template operator()<Resize, Ratio>() for the preset of these numbers, or `none` without one.
template <class Run>
int with_seed_preset(std::size_t resize, std::size_t ratio, Run&& run, int none)
{
    switch (resize * 10 + ratio) {
    case 2244: return run.template operator()<224, 4>();
    case 2241: return run.template operator()<224, 1>();
    case 644: return run.template operator()<64, 4>();
    case 641: return run.template operator()<64, 1>();
    case 324: return run.template operator()<32, 4>();
    case 321: return run.template operator()<32, 1>();
    }
    return none;
}

} // namespace vgg_examples
