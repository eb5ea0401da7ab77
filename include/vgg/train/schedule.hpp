#pragma once
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <numbers>
#include <stdexcept>
#include <string>
#include <vector>

#include "vgg/train/optimizer.hpp"

namespace vgg {

/// What a schedule's position counts: epochs (torch's usual scheduler.step() after each epoch)
/// or optimiser steps (scheduler.step() after each batch).
enum class schedule_unit { epoch, step };

/// A learning rate as a function of the position (epochs or steps done), as
/// torch.optim.lr_scheduler's StepLR, MultiStepLR and CosineAnnealingLR give it, optionally after
/// a linear warm-up (LinearLR followed by the schedule, as SequentialLR chains them). A pure
/// function of the position, so a resumed run continues it exactly.
class lr_schedule {
public:
    /// The base learning rate throughout.
    static lr_schedule constant(schedule_unit unit = schedule_unit::epoch) { return lr_schedule(kind::constant, unit); }

    /// StepLR: base * gamma^(floor(t / step_size)).
    static lr_schedule step(std::size_t step_size, float gamma = 0.1f, schedule_unit unit = schedule_unit::epoch)
    {
        if (step_size == 0)
            throw std::invalid_argument("lr_schedule::step: step_size must be at least 1");
        lr_schedule s(kind::step, unit);
        s.period_ = step_size;
        s.gamma_ = gamma;
        return s;
    }

    /// MultiStepLR: base * gamma^(the number of milestones <= t); milestones in increasing order.
    static lr_schedule multi_step(std::vector<std::size_t> milestones, float gamma = 0.1f,
                                  schedule_unit unit = schedule_unit::epoch)
    {
        if (!std::is_sorted(milestones.begin(), milestones.end()))
            throw std::invalid_argument("lr_schedule::multi_step: the milestones must be in increasing order");
        lr_schedule s(kind::multi_step, unit);
        s.milestones_ = std::move(milestones);
        s.gamma_ = gamma;
        return s;
    }

    /// CosineAnnealingLR: eta_min + (base - eta_min) * (1 + cos(pi * t / t_max)) / 2.
    static lr_schedule cosine(std::size_t t_max, float eta_min = 0.f, schedule_unit unit = schedule_unit::epoch)
    {
        if (t_max == 0)
            throw std::invalid_argument("lr_schedule::cosine: t_max must be at least 1");
        lr_schedule s(kind::cosine, unit);
        s.period_ = t_max;
        s.eta_min_ = eta_min;
        return s;
    }

    /// This schedule after `length` positions of LinearLR(start_factor, 1.0, length): the rate
    /// climbs from start_factor * base to base, then this schedule runs from its own position 0.
    lr_schedule after_warmup(std::size_t length, float start_factor = 1.f / 3.f) const
    {
        if (length == 0 || !(start_factor > 0.f && start_factor <= 1.f))
            throw std::invalid_argument(
                "lr_schedule::after_warmup: needs a length of at least 1 and a start factor in (0, 1]");
        lr_schedule s = *this;
        s.warmup_ = length;
        s.warmup_start_ = start_factor;
        return s;
    }

    /// The learning rate at `position` (epochs or steps done) for the base rate `base`.
    float learning_rate(float base, std::size_t position) const
    {
        if (position < warmup_) {
            const double factor =
                double(warmup_start_) + (1.0 - double(warmup_start_)) * double(position) / double(warmup_);
            return static_cast<float>(double(base) * factor);
        }
        const std::size_t t = position - warmup_;
        switch (kind_) {
        case kind::step: return static_cast<float>(double(base) * std::pow(double(gamma_), double(t / period_)));
        case kind::multi_step: {
            const auto passed = std::upper_bound(milestones_.begin(), milestones_.end(), t) - milestones_.begin();
            return static_cast<float>(double(base) * std::pow(double(gamma_), double(passed)));
        }
        case kind::cosine:
            return static_cast<float>(double(eta_min_) +
                                      (double(base) - double(eta_min_)) *
                                          (1.0 + std::cos(std::numbers::pi * double(t) / double(period_))) / 2.0);
        case kind::constant: break;
        }
        return base;
    }

    schedule_unit unit() const { return unit_; }
    bool is_constant() const { return kind_ == kind::constant && warmup_ == 0; }

    /// The schedule as text, as checkpoints keep it: "cosine(t_max=10, eta_min=0) per epoch after
    /// warmup(2, 0.333333)".
    std::string text() const
    {
        std::string text;
        switch (kind_) {
        case kind::constant: text = "constant"; break;
        case kind::step:
            text = "step(step_size=" + std::to_string(period_) + ", gamma=" + shortest_text(gamma_) + ")";
            break;
        case kind::multi_step: {
            text = "multi_step(milestones=";
            for (std::size_t i = 0; i < milestones_.size(); ++i)
                text += (i ? ":" : "") + std::to_string(milestones_[i]);
            text += ", gamma=" + shortest_text(gamma_) + ")";
            break;
        }
        case kind::cosine:
            text = "cosine(t_max=" + std::to_string(period_) + ", eta_min=" + shortest_text(eta_min_) + ")";
            break;
        }
        text += unit_ == schedule_unit::epoch ? " per epoch" : " per step";
        if (warmup_)
            text += " after warmup(" + std::to_string(warmup_) + ", " + shortest_text(warmup_start_) + ")";
        return text;
    }

private:
    enum class kind { constant, step, multi_step, cosine };
    lr_schedule(kind k, schedule_unit unit) : kind_(k), unit_(unit) {}

    kind kind_;
    schedule_unit unit_;
    std::size_t period_ = 1, warmup_ = 0;
    float gamma_ = 1.f, eta_min_ = 0.f, warmup_start_ = 1.f;
    std::vector<std::size_t> milestones_;
};

} // namespace vgg
