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

/// Whether the sweeps run every configuration (VGG_SWEEP=full, as scripts/test.sh --all sets it)
/// rather than a sample.
inline bool full_sweep()
{
    const char* sweep = std::getenv("VGG_SWEEP");
    return sweep && std::strcmp(sweep, "full") == 0;
}

} // namespace vgg::testing
