#pragma once
// What the programs share on their command lines: argument checks whose messages a person can
// read ("--lr: must be above 0, not 0" rather than a range with 309 digits), one exit code for
// every argument mistake, and the exit codes written out for --help.
#include <optional>
#include <sstream>
#include <string>
#include <type_traits>

#include <CLI/CLI.hpp>

#include <vgg/core/precision.hpp>
#include <vgg/kernels/cpu_features.hpp>

namespace vgg_cli {

/// Exit codes of vgg_train, vgg_predict and vgg_bench.
enum exit_code : int { success = 0, failure = 1, usage = 2, diverged = 3 };
inline const std::string exit_codes_help =
    "Exit codes: 0 success; 1 an error in a file or during the run (the message names it); 2 a wrong or missing "
    "argument; 3 (vgg_train) the loss or a parameter became NaN or infinite.\n";

namespace detail {

template <class T>
bool parse_number(const std::string& text, T& value)
{
    std::istringstream in(text);
    in >> value;
    return !in.fail() && in.peek() == std::char_traits<char>::eof();
}

template <class T>
std::string show(T value)
{
    std::ostringstream out;
    out << value;
    return out.str();
}

} // namespace detail

/// A number of type T from `low` to `high`, both included.
template <class T>
CLI::Validator number_in(T low, T high)
{
    const std::string range = detail::show(low) + " to " + detail::show(high);
    return CLI::Validator(
        [=](std::string& text) -> std::string {
            T value{};
            // A stream reads "-1" into an unsigned type as a huge number: refuse the sign first.
            if ((std::is_unsigned_v<T> && text.find('-') != std::string::npos) || !detail::parse_number(text, value))
                return "'" + text + "' is not " + (std::is_integral_v<T> ? "a whole number" : "a number");
            if (value < low || value > high)
                return "must be from " + range + ", not " + text;
            return {};
        },
        "from " + range);
}

/// A number above zero.
inline CLI::Validator above_zero()
{
    return CLI::Validator(
        [](std::string& text) -> std::string {
            double value = 0;
            if (!detail::parse_number(text, value))
                return "'" + text + "' is not a number";
            return value > 0 ? std::string() : "must be above 0, not " + text;
        },
        "above 0");
}

/// --precision fp32|bf16, refusing bf16 on a CPU that cannot run it (the message says what it lacks).
inline CLI::Option* add_precision_option(CLI::App& app, vgg::precision& value)
{
    return app
        .add_option_function<std::string>(
            "--precision",
            [&value](const std::string& name) { value = name == "bf16" ? vgg::precision::bf16 : vgg::precision::fp32; },
            "Arithmetic of the convolutions and fully connected layers: fp32, or bf16 products with fp32 sums (on "
            "CPUs with AMX or AVX512_BF16; without AMX, convolutions Winograd can run stay fp32, which is faster)")
        ->check(CLI::IsMember({"fp32", "bf16"}))
        ->check(CLI::Validator(
            [](std::string& name) { return name == "bf16" ? vgg::kernels::bf16_unsupported_reason() : std::string(); },
            ""))
        ->default_str("fp32");
}

/// The arithmetic of an inference: a vgg::precision, or int8 (the network quantised after
/// training, calibrated on sample images).
struct inference_precision {
    vgg::precision products = vgg::precision::fp32;
    bool int8 = false;
};

/// --precision fp32|bf16|int8 for programs that only infer; bf16 as add_precision_option.
inline CLI::Option* add_inference_precision_option(CLI::App& app, inference_precision& value)
{
    return app
        .add_option_function<std::string>(
            "--precision",
            [&value](const std::string& name) {
                value.int8 = name == "int8";
                value.products = name == "bf16" ? vgg::precision::bf16 : vgg::precision::fp32;
            },
            "Arithmetic: fp32; bf16 products with fp32 sums (on CPUs with AMX or AVX512_BF16); or int8, the "
            "network quantised after training (u8 activations and image, s8 weights per channel, int32 sums), "
            "calibrated on --calibration images")
        ->check(CLI::IsMember({"fp32", "bf16", "int8"}))
        ->check(CLI::Validator(
            [](std::string& name) { return name == "bf16" ? vgg::kernels::bf16_unsupported_reason() : std::string(); },
            ""))
        ->default_str("fp32");
}

/// Parses the command line. A mistake prints CLI11's message and gives exit_code::usage, --help
/// prints the help and gives exit_code::success; nothing means the program goes on.
inline std::optional<int> parse(CLI::App& app, int argc, char** argv)
{
    app.footer(exit_codes_help);
    try {
        app.parse(argc, argv);
    } catch (const CLI::ParseError& e) {
        return app.exit(e) == 0 ? success : usage;
    }
    return std::nullopt;
}

} // namespace vgg_cli
