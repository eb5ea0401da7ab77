#pragma once
// The contract every fuzz target checks: a parser given any bytes either succeeds or throws
// vgg::io::file_error, whose message names the file. Anything else (a crash, a sanitizer
// report, another exception, a message without the file's name) is a finding.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <span>
#include <string>

#include <vgg/io/error.hpp>

namespace vgg::fuzz {

/// The name every target gives its input, so error messages can be checked for it.
inline const char* const input_name = "fuzz-input";

template <class Parse>
void expect_success_or_file_error(Parse&& parse)
{
    try {
        parse();
    } catch (const io::file_error& e) {
        if (std::string(e.what()).rfind(std::string(input_name) + ": ", 0) != 0) {
            std::fprintf(stderr, "error message does not start with the file's name: %s\n", e.what());
            std::abort();
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "unexpected exception (not vgg::io::file_error): %s\n", e.what());
        std::abort();
    }
}

} // namespace vgg::fuzz
