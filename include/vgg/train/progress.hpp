#pragma once
#include <chrono>
#include <cmath>
#include <cstdio>
#include <ostream>
#include <string>

namespace vgg {

/// Progress of one pass over batches: on a terminal, a bar redrawn in place with the rate, the
/// running loss and the time left; elsewhere (a log file, CI), a plain line every tenth of the
/// pass or every minute, whichever comes first.
class progress_reporter {
public:
    using clock = std::chrono::steady_clock;

    progress_reporter(std::ostream& out, bool terminal, std::string label, std::size_t total_batches)
        : out_(out), terminal_(terminal), label_(std::move(label)), total_(total_batches), start_(clock::now()),
          last_print_(start_)
    {}

    /// After `batches` batches holding `examples` examples, with the loss so far (NaN: none).
    void update(std::size_t batches, std::size_t examples, double running_loss)
    {
        const auto now = clock::now();
        const double elapsed = std::chrono::duration<double>(now - start_).count();
        const double since_print = std::chrono::duration<double>(now - last_print_).count();
        const bool done = batches == total_;
        const bool new_tenth = batches * 10 / total_ != last_tenth_;
        if (terminal_ ? (since_print < 0.2 && !done) : (!new_tenth && since_print < 60 && !done))
            return;
        last_tenth_ = batches * 10 / total_;
        last_print_ = now;
        const double rate = elapsed > 0 ? double(examples) / elapsed : 0;
        const double remaining = batches > 0 ? elapsed * double(total_ - batches) / double(batches) : 0;
        char numbers[160];
        char loss[32] = "";
        if (!std::isnan(running_loss))
            std::snprintf(loss, sizeof loss, ", loss %.3f", running_loss);
        std::snprintf(numbers, sizeof numbers, "%zu/%zu batches, %.1f examples/sec%s, ETA %s", batches, total_, rate,
                      loss, duration_text(remaining).c_str());
        if (terminal_) {
            constexpr std::size_t width = 30;
            const std::size_t filled = total_ ? width * batches / total_ : width;
            out_ << "\r\033[K" << label_ << " [" << std::string(filled, '=') << (filled < width ? ">" : "")
                 << std::string(filled < width ? width - filled - 1 : 0, ' ') << "] " << numbers << std::flush;
        } else {
            out_ << label_ << ": " << numbers << '\n' << std::flush;
        }
    }

    /// Clears the bar so that the next line starts clean.
    void finish()
    {
        if (terminal_)
            out_ << "\r\033[K" << std::flush;
    }

    static std::string duration_text(double seconds)
    {
        const auto total = static_cast<long>(seconds + 0.5);
        char text[32];
        if (total >= 3600)
            std::snprintf(text, sizeof text, "%ld:%02ld:%02ld", total / 3600, total / 60 % 60, total % 60);
        else
            std::snprintf(text, sizeof text, "%ld:%02ld", total / 60, total % 60);
        return text;
    }

private:
    std::ostream& out_;
    bool terminal_;
    std::string label_;
    std::size_t total_, last_tenth_ = 0;
    clock::time_point start_, last_print_;
};

} // namespace vgg
