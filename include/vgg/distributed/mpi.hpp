#pragma once
// Synchronous data-parallel SGD over MPI. Optional: only code that includes this header needs
// MPI (link MPI::MPI_CXX); vgg.hpp does not include it.
//
// Every rank holds the whole network. Rank 0's initial parameters are broadcast; each rank takes
// a contiguous share of every global batch (shard_of) and runs forward and backward on it with
// run_context::first_sample set, so dropout draws what one process would; the gradients are then
// summed over ranks, each rank's scaled by its share of the batch, so that every rank applies
// exactly the update one process would have computed on the whole batch.
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstring>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include <mpi.h>

#include "vgg/core/layer.hpp"
#include "vgg/core/tensor.hpp"
#include "vgg/detail/parallel.hpp"

namespace vgg::distributed {

/// MPI for the lifetime of the object. Only the thread that created it calls MPI (OpenMP
/// threads never do), which is what MPI_THREAD_FUNNELED promises.
class mpi_environment {
public:
    mpi_environment(int& argc, char**& argv)
    {
        int provided = 0;
        MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
        MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
        MPI_Comm_size(MPI_COMM_WORLD, &size_);
    }
    ~mpi_environment() { MPI_Finalize(); }
    mpi_environment(const mpi_environment&) = delete;
    mpi_environment& operator=(const mpi_environment&) = delete;

    int rank() const { return rank_; }
    int size() const { return size_; }

private:
    int rank_ = 0, size_ = 1;
};

/// This rank's share of `count` items: contiguous, the shares' sizes differing by at most one.
inline detail::range shard_of(std::size_t count, int rank, int ranks)
{
    return detail::partition(count, static_cast<std::size_t>(ranks), static_cast<std::size_t>(rank));
}

/// Makes every rank's parameters rank 0's.
template <class Net>
void broadcast_parameters(Net& net, MPI_Comm comm = MPI_COMM_WORLD)
{
    VGG_REQUIRE_NETWORK(Net, "broadcast_parameters(net)");
    net.visit_parameters([&](const parameter_view& p) {
        MPI_Bcast(p.value.data(), static_cast<int>(p.value.size()), MPI_FLOAT, 0, comm);
    });
}

/// Sums `values` over all ranks, in place (for counts and loss totals).
inline void sum_over_ranks(std::span<double> values, MPI_Comm comm = MPI_COMM_WORLD)
{
    MPI_Allreduce(MPI_IN_PLACE, values.data(), static_cast<int>(values.size()), MPI_DOUBLE, MPI_SUM, comm);
}

/// Gradient bytes per MPI_Iallreduce: few enough calls to amortise their latency, yet the first
/// starts while most of the backward pass is still to run.
inline constexpr std::size_t default_bucket_bytes = std::size_t(16) << 20;

/// Sums the network's gradients over ranks in a few large buckets. Buckets follow the backward
/// order (the head first), so a bucket's MPI_Iallreduce starts as soon as the backward pass has
/// finished its layers and runs while the earlier layers' backward is computed.
///
///     auto hook = sync.begin(local_batch / double(global_batch));
///     net.backward(dlogits, nullptr, hook);
///     sync.finish(); // every rank now holds the gradient of the whole batch
template <class Net>
class gradient_allreduce {
    VGG_REQUIRE_NETWORK(Net, "gradient_allreduce<Net>");

public:
    /// Buckets of at least `bucket_bytes` (the last may be smaller).
    explicit gradient_allreduce(Net& net, std::size_t bucket_bytes = default_bucket_bytes,
                                MPI_Comm comm = MPI_COMM_WORLD)
        : comm_(comm)
    {
        std::vector<tensor_slot> slots;
        net.visit_parameters([&](const parameter_view& p) {
            if (p.trainable)
                slots.push_back({p.layer, p.grad});
        });
        // Backward order: from the last parameter to the first.
        for (auto slot = slots.rbegin(); slot != slots.rend(); ++slot) {
            if (buckets_.empty() || buckets_.back().floats * sizeof(float) >= bucket_bytes)
                buckets_.emplace_back();
            auto& bucket = buckets_.back();
            bucket.slots.push_back(*slot);
            bucket.floats += slot->grad.size();
            bucket.ready_after_layer = slot->layer;
        }
        for (auto& bucket : buckets_)
            bucket.buffer.resize(bucket.floats);
    }

    /// Starts a step: scales this rank's gradients by `scale` (its share of the global batch) and
    /// returns the hook to pass to Sequential::backward.
    auto begin(float scale)
    {
        scale_ = scale;
        next_bucket_ = 0;
        requests_.assign(buckets_.size(), MPI_REQUEST_NULL);
        blocked_seconds_ = 0;
        return [this](std::size_t layer, auto&& run) {
            run();
            timed([&] {
                while (next_bucket_ < buckets_.size() && buckets_[next_bucket_].ready_after_layer >= layer)
                    start(next_bucket_++);
                // Let MPI progress the reductions already under way.
                int done = 0;
                MPI_Testall(static_cast<int>(requests_.size()), requests_.data(), &done, MPI_STATUSES_IGNORE);
            });
        };
    }

    /// Waits for the sums and writes them back into the gradients.
    void finish()
    {
        timed([&] {
            while (next_bucket_ < buckets_.size()) // a bucket whose layers the hook never saw
                start(next_bucket_++);
            MPI_Waitall(static_cast<int>(requests_.size()), requests_.data(), MPI_STATUSES_IGNORE);
        });
        for (auto& bucket : buckets_) {
            const float* from = bucket.buffer.data();
            for (auto& slot : bucket.slots) {
                std::memcpy(slot.grad.data(), from, slot.grad.size_bytes());
                from += slot.grad.size();
            }
        }
    }

    std::size_t buckets() const { return buckets_.size(); }
    /// Bytes of gradient each rank contributes per step (what a ring allreduce sends about twice).
    std::size_t gradient_bytes() const
    {
        std::size_t floats = 0;
        for (const auto& bucket : buckets_)
            floats += bucket.floats;
        return floats * sizeof(float);
    }
    /// Wall time of the last step spent inside MPI calls (starting, progressing, waiting).
    double blocked_seconds() const { return blocked_seconds_; }

private:
    struct tensor_slot {
        std::size_t layer;
        std::span<float> grad;
    };
    struct bucket_state {
        std::vector<tensor_slot> slots;
        std::size_t floats = 0;
        std::size_t ready_after_layer = 0; // the lowest layer index holding one of its tensors
        std::vector<float> buffer;
    };

    void start(std::size_t index)
    {
        auto& bucket = buckets_[index];
        float* to = bucket.buffer.data();
        for (auto& slot : bucket.slots)
            for (float g : slot.grad)
                *to++ = g * scale_;
        MPI_Iallreduce(MPI_IN_PLACE, bucket.buffer.data(), static_cast<int>(bucket.floats), MPI_FLOAT, MPI_SUM, comm_,
                       &requests_[index]);
    }

    template <class Work>
    void timed(Work&& work)
    {
        const auto start_time = std::chrono::steady_clock::now();
        work();
        blocked_seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_time).count();
    }

    MPI_Comm comm_;
    std::vector<bucket_state> buckets_;
    std::vector<MPI_Request> requests_;
    std::size_t next_bucket_ = 0;
    float scale_ = 1.f;
    double blocked_seconds_ = 0;
};

/// The ranks of `comm` training together under vgg::fit (its Team): each takes its share of
/// every batch, and after each backward pass the gradients, the losses and the counts are summed
/// over the ranks. Broadcast the initial parameters first (broadcast_parameters).
template <class Net>
class mpi_team {
public:
    explicit mpi_team(Net& net, MPI_Comm comm = MPI_COMM_WORLD)
        : comm_(comm), gradients_(net, default_bucket_bytes, comm)
    {
        int rank = 0, size = 1;
        MPI_Comm_rank(comm, &rank);
        MPI_Comm_size(comm, &size);
        rank_ = static_cast<std::size_t>(rank);
        size_ = static_cast<std::size_t>(size);
    }

    std::size_t rank() const { return rank_; }
    std::size_t size() const { return size_; }
    void sum(std::span<double> values) const
    {
        if (size_ > 1)
            sum_over_ranks(values, comm_);
    }
    void backward(Net& net, const tensor<typename Net::output_shape>& grad, float share)
    {
        if (size_ == 1) {
            net.backward(grad);
            return;
        }
        net.backward(grad, nullptr, gradients_.begin(share));
        gradients_.finish();
        blocked_seconds_ += gradients_.blocked_seconds();
    }
    /// The time spent in MPI per step so far, over `steps` steps, and the buckets' sizes.
    std::string epoch_report(std::size_t steps) const
    {
        if (size_ == 1)
            return {};
        char line[160];
        std::snprintf(line, sizeof line,
                      "allreduce: %.1f ms per step on average, %zu buckets, %.1f MB of gradients per rank per step\n",
                      1e3 * blocked_seconds_ / double(steps), gradients_.buckets(),
                      double(gradients_.gradient_bytes()) / 1e6);
        return line;
    }

private:
    MPI_Comm comm_;
    std::size_t rank_ = 0, size_ = 1;
    gradient_allreduce<Net> gradients_;
    double blocked_seconds_ = 0;
};

} // namespace vgg::distributed
