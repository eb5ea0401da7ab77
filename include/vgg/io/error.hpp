#pragma once
#include <filesystem>
#include <stdexcept>
#include <string>

namespace vgg::io {

/// A file that cannot be used: the message names the file and what is wrong with it.
class file_error : public std::runtime_error {
public:
    file_error(const std::filesystem::path& file, const std::string& problem)
        : std::runtime_error(file.string() + ": " + problem), file_(file)
    {}
    const std::filesystem::path& file() const { return file_; }

private:
    std::filesystem::path file_;
};

} // namespace vgg::io
