#pragma once
// Helpers shared by the tests: files to read and write, and how large a sweep runs.
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>

#include <unistd.h>

#include <vgg/io/error.hpp>

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

} // namespace vgg::testing
