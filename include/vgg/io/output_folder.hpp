#pragma once
// A folder that one training run writes its results into: held by one run at a time, cleared of
// the temporary files of runs that died, and checked for writing before the run spends hours.
#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <string>
#include <system_error>

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include "vgg/io/atomic_file.hpp"
#include "vgg/io/error.hpp"

namespace vgg::io {

/// An advisory lock (flock) on `folder`, held while the object lives: a second run that asks for
/// the same folder is refused with the holder's process id, instead of both overwriting each
/// other's files. The lock file, `folder`/.vgg-lock, holds that id; it stays after the run, and a
/// lock dies with its process, so a crashed run never blocks the next.
class folder_lock {
public:
    explicit folder_lock(const std::filesystem::path& folder) : path_(folder / ".vgg-lock")
    {
        descriptor_ = ::open(path_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (descriptor_ < 0)
            throw file_error(folder, std::string("cannot write in this folder: ") + std::strerror(errno));
        if (::flock(descriptor_, LOCK_EX | LOCK_NB) != 0) {
            const int lock_errno = errno;
            char holder[32] = {};
            const auto length = ::pread(descriptor_, holder, sizeof holder - 1, 0);
            ::close(descriptor_);
            if (lock_errno != EWOULDBLOCK)
                throw file_error(folder, std::string("cannot lock: ") + std::strerror(lock_errno));
            throw file_error(folder, "is in use by another run (process " +
                                         (length > 0 ? std::string(holder, std::size_t(length)) : std::string("?")) +
                                         "): two runs writing one folder would overwrite each other's files; wait "
                                         "for it to end or choose another folder");
        }
        const std::string id = std::to_string(::getpid());
        if (::ftruncate(descriptor_, 0) != 0 || ::pwrite(descriptor_, id.data(), id.size(), 0) != ssize_t(id.size())) {
            const int write_errno = errno;
            ::close(descriptor_);
            throw file_error(path_, std::string("cannot write: ") + std::strerror(write_errno));
        }
    }
    ~folder_lock() { ::close(descriptor_); }
    folder_lock(const folder_lock&) = delete;
    folder_lock& operator=(const folder_lock&) = delete;

private:
    std::filesystem::path path_;
    int descriptor_ = -1;
};

/// The process id in a temporary file's name as temporary_path_for makes it ("NAME.tmpPID"), or 0
/// for any other name.
inline pid_t temporary_file_owner(const std::string& name)
{
    const auto at = name.rfind(".tmp");
    if (at == std::string::npos || at + 4 == name.size())
        return 0;
    pid_t owner = 0;
    const char* end = name.data() + name.size();
    const auto parsed = std::from_chars(name.data() + at + 4, end, owner);
    return parsed.ec == std::errc() && parsed.ptr == end && owner > 0 ? owner : 0;
}

/// Removes the temporary files in `folder` that write_file_atomically left when its process died
/// (a signal during a checkpoint write): those of processes that no longer run. Returns how many.
inline std::size_t remove_stale_temporaries(const std::filesystem::path& folder)
{
    std::size_t removed = 0;
    std::error_code error;
    for (const auto& entry : std::filesystem::directory_iterator(folder, error)) {
        const pid_t owner = temporary_file_owner(entry.path().filename().string());
        if (owner == 0 || !entry.is_regular_file(error))
            continue;
        if (::kill(owner, 0) != 0 && errno == ESRCH && std::filesystem::remove(entry.path(), error))
            ++removed;
    }
    return removed;
}

/// Throws a file_error naming `path` unless a file can be created there (tried with the
/// temporary name write_file_atomically would use, then removed): a run finds out before its
/// first epoch, not after it.
inline void check_writable(const std::filesystem::path& path)
{
    if (std::filesystem::is_directory(path))
        throw file_error(path, "is a folder, not a file to write");
    const auto probe = temporary_path_for(path);
    const int descriptor = ::open(probe.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (descriptor < 0)
        throw file_error(path, std::string("cannot be written: ") + std::strerror(errno));
    ::close(descriptor);
    std::filesystem::remove(probe);
}

} // namespace vgg::io
