#pragma once
// Helpers shared by the tests: files to read and write, and how large a sweep runs.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <sys/wait.h>
#include <unistd.h>

#include <vgg/core/layer.hpp>
#include <vgg/io/error.hpp>

#include "cpu_skip.hpp"

namespace vgg::testing {

/// A path in a folder of this test process's own under the system's temporary folder.
inline std::filesystem::path scratch_file(const std::string& name)
{
    const auto dir = std::filesystem::temp_directory_path() / ("vgg_tests_" + std::to_string(::getpid()));
    std::filesystem::create_directories(dir);
    return dir / name;
}

inline void write_bytes(const std::filesystem::path& path, const std::string& bytes)
{
    std::ofstream(path, std::ios::binary) << bytes;
}

/// The message of the io::file_error that `action` throws, or "no error".
inline std::string error_of(const std::function<void()>& action)
{
    try {
        action();
    } catch (const io::file_error& e) {
        return e.what();
    }
    return "no error";
}

/// The largest |a - b| over the largest |b|.
inline float relative_difference(std::span<const float> a, std::span<const float> b)
{
    if (a.size() != b.size())
        throw std::invalid_argument("relative_difference: " + std::to_string(a.size()) + " values against " +
                                    std::to_string(b.size()));
    float largest = 0.f, worst = 0.f;
    for (std::size_t i = 0; i < a.size(); ++i) {
        largest = std::max(largest, std::abs(b[i]));
        worst = std::max(worst, std::abs(a[i] - b[i]));
    }
    return worst / std::max(largest, 1e-30f);
}

/// How much of a sweep runs, from VGG_SWEEP: "small" (the sanitizer and instruction-set builds:
/// every kernel path once), "full" (scripts/test.sh --all: every configuration), otherwise a sample.
enum class sweep_size { small, sample, full };
inline sweep_size sweep_size_asked()
{
    const char* sweep = std::getenv("VGG_SWEEP");
    if (sweep && std::strcmp(sweep, "full") == 0)
        return sweep_size::full;
    return sweep && std::strcmp(sweep, "small") == 0 ? sweep_size::small : sweep_size::sample;
}

/// The folder of reference files that tests/`script` (run by Debian's /usr/bin/python3, which has
/// python3-torch) makes once per build tree as binary_dir/`name`. A script that finds torch or
/// torchvision missing exits with 77, and the test is skipped, saying so.
inline std::filesystem::path python_reference(const std::string& source_dir, const std::string& binary_dir,
                                              const std::string& script, const std::string& name)
{
    const std::filesystem::path dir = std::filesystem::path(binary_dir) / name;
    if (std::filesystem::exists(dir)) // made in a folder of its own and renamed whole
        return dir;
    std::string command = "/usr/bin/python3 ";
    command += source_dir + "/" + script + " " + dir.string();
    const int status = std::system(command.c_str());
    if (WIFEXITED(status) && WEXITSTATUS(status) == 77)
        skip_because(
            "torch or torchvision is not installed for /usr/bin/python3 (bash scripts/install-deps.sh reference)");
    if (status != 0)
        throw std::runtime_error("tests/" + script + " failed with status " + std::to_string(status));
    return dir;
}

/// Every parameter and buffer of a network by name, as stored: two networks of the same layers
/// compare equal exactly when their values are the same bytes.
template <class Net>
std::map<std::string, std::vector<float>> values_of(Net& net)
{
    std::map<std::string, std::vector<float>> values;
    net.visit_parameters([&](const parameter_view& p) { values[p.name].assign(p.value.begin(), p.value.end()); });
    return values;
}

} // namespace vgg::testing
