// An in-memory input pipeline: dataset -> (split) -> shuffle -> batch -> map stages, with the next
// batches prepared by worker threads while the consumer trains on the current one.
//
// Determinism: the shuffle of epoch e depends only on (seed, e), and a random map stage draws its
// numbers from (seed, stage seed, epoch, the sample's index in the storage). No stream is shared
// between samples, so the batches are bitwise the same for any number of workers, with or
// without prefetch, and a sample is augmented the same way whatever the batch size.
#pragma once
#include <algorithm>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <span>
#include <string>
#include <thread>
#include <utility>
#include <vector>
#include "../runtime/error.hpp"
#include "../runtime/random.hpp"
#include "../runtime/view.hpp"

namespace kiln::data {

// ---- dataset ----------------------------------------------------------------------------------------

// Samples: features float [N, sample_shape...] and labels int32 [N]. Splits share the storage and
// only hold the indices of their samples.
class dataset {
 public:
  dataset() = default;
  dataset(std::vector<float> features, kiln::dims sample_shape, std::vector<std::int32_t> labels) {
    auto s = std::make_shared<storage>();
    s->sample_shape = sample_shape;
    s->sample_elements = sample_shape.elements();
    const auto n = std::int64_t(labels.size());
    if (s->sample_elements <= 0) throw error("kiln: dataset sample shape " + to_string(sample_shape) + " holds no elements");
    if (std::int64_t(features.size()) != n * s->sample_elements)
      throw error("kiln: dataset of " + std::to_string(n) + " labels needs " + std::to_string(n * s->sample_elements) +
                  " feature values for samples of shape " + to_string(sample_shape) + ", got " + std::to_string(features.size()));
    s->features = std::move(features);
    s->labels = std::move(labels);
    data_ = std::move(s);
    indices_.resize(std::size_t(n));
    for (std::int64_t i = 0; i < n; ++i) indices_[std::size_t(i)] = i;
  }

  std::int64_t size() const { return std::int64_t(indices_.size()); }
  const kiln::dims& sample_shape() const {
    static const kiln::dims none{};
    return data_ ? data_->sample_shape : none;
  }
  std::int64_t sample_elements() const { return data_ ? data_->sample_elements : 0; }
  // Index into the shared storage of sample i; stable across splits, so augmentation keys on it.
  std::int64_t storage_index(std::int64_t i) const { return indices_[std::size_t(i)]; }
  std::span<const float> features(std::int64_t i) const {
    return {data_->features.data() + storage_index(i) * data_->sample_elements, std::size_t(data_->sample_elements)};
  }
  std::int32_t label(std::int64_t i) const { return data_->labels[std::size_t(storage_index(i))]; }

  struct split_result;
  // Keras' validation_split arithmetic (train = floor(N * (1 - fraction))), but the samples are
  // drawn by a seeded permutation instead of taking the tail. Each part keeps storage order.
  split_result split(double validation_fraction, std::uint64_t seed) const;
  split_result split_count(std::int64_t validation_count, std::uint64_t seed) const;

  // The samples at these positions, in this order.
  dataset subset(std::span<const std::int64_t> positions) const {
    dataset r;
    r.data_ = data_;
    r.indices_.reserve(positions.size());
    for (auto p : positions) {
      if (p < 0 || p >= size()) throw error("kiln: dataset subset position " + std::to_string(p) + " is out of range for " + std::to_string(size()) + " samples");
      r.indices_.push_back(indices_[std::size_t(p)]);
    }
    return r;
  }

 private:
  struct storage {
    std::vector<float> features;
    std::vector<std::int32_t> labels;
    kiln::dims sample_shape{};
    std::int64_t sample_elements = 0;
  };
  std::shared_ptr<const storage> data_;
  std::vector<std::int64_t> indices_;
};

struct dataset::split_result {
  dataset train, validation;
};

// Fisher-Yates with counter-based draws: the permutation depends on (key, n) only.
inline std::vector<std::int64_t> permutation(std::int64_t n, std::uint64_t key) {
  std::vector<std::int64_t> p(std::size_t(std::max<std::int64_t>(n, 0)));
  for (std::int64_t i = 0; i < n; ++i) p[std::size_t(i)] = i;
  for (std::int64_t i = n - 1; i > 0; --i) {
    auto j = std::int64_t(uniform01(key, std::uint64_t(i)) * double(i + 1));
    if (j > i) j = i;
    std::swap(p[std::size_t(i)], p[std::size_t(j)]);
  }
  return p;
}

inline dataset::split_result dataset::split_count(std::int64_t validation_count, std::uint64_t seed) const {
  if (validation_count < 0 || validation_count > size())
    throw error("kiln: cannot split " + std::to_string(validation_count) + " validation samples off a dataset of " + std::to_string(size()));
  auto order = permutation(size(), mix64(seed ^ 0x73706c6974ull));  // "split"
  const auto cut = order.begin() + (size() - validation_count);
  std::sort(order.begin(), cut);
  std::sort(cut, order.end());
  return {subset({order.data(), std::size_t(size() - validation_count)}), subset({order.data() + (size() - validation_count), std::size_t(validation_count)})};
}

inline dataset::split_result dataset::split(double validation_fraction, std::uint64_t seed) const {
  if (!(validation_fraction >= 0 && validation_fraction <= 1))
    throw error("kiln: validation fraction " + std::to_string(validation_fraction) + " is not in [0, 1]");
  const auto train = std::int64_t(double(size()) * (1.0 - validation_fraction));
  return split_count(size() - train, seed);
}

// ---- map stages -----------------------------------------------------------------------------------

// What a stage may key its random numbers on.
struct sample_info {
  std::uint64_t seed = 0;       // the pipeline's
  std::int64_t epoch = 0;
  std::int64_t storage_index = 0;
};

// A per-sample transformation. `apply` reads a sample of `in_shape` and writes one of
// output_shape(in_shape); when in_place, in == out.
struct stage {
  std::string name;
  bool in_place = true;
  std::function<kiln::dims(const kiln::dims& in_shape)> output_shape = [](const kiln::dims& s) { return s; };
  std::function<void(const float* in, float* out, const kiln::dims& in_shape, const sample_info& info)> apply;
};

// x * scale + offset (Keras' Rescaling); rescale(1.0f / 255) maps bytes to [0, 1].
inline stage rescale(float scale, float offset = 0) {
  stage s;
  s.name = "rescale";
  s.apply = [scale, offset](const float* in, float* out, const kiln::dims& shape, const sample_info&) {
    const std::int64_t n = shape.elements();
    for (std::int64_t i = 0; i < n; ++i) out[i] = in[i] * scale + offset;
  };
  return s;
}

// (x - mean) / stddev
inline stage normalize(float mean, float stddev) {
  if (!(stddev > 0)) throw error("kiln: normalize needs a positive stddev, got " + std::to_string(stddev));
  stage s;
  s.name = "normalize";
  const float inverse = 1.0f / stddev;
  s.apply = [mean, inverse](const float* in, float* out, const kiln::dims& shape, const sample_info&) {
    const std::int64_t n = shape.elements();
    for (std::int64_t i = 0; i < n; ++i) out[i] = (in[i] - mean) * inverse;
  };
  return s;
}

namespace detail {
// A sample is an image [H, W, C] (NHWC without the batch) or [H, W].
inline void image_dims(const kiln::dims& s, const char* stage_name, std::int64_t& h, std::int64_t& w, std::int64_t& c) {
  if (s.rank != 2 && s.rank != 3)
    throw error(std::string("kiln: ") + stage_name + " needs image samples [height, width, channels] or [height, width], got " + to_string(s));
  h = s[0];
  w = s[1];
  c = s.rank == 3 ? s[2] : 1;
}
}  // namespace detail

// Mirrors the width axis of each sample with probability `probability` (tf.image.random_flip_left_right).
inline stage random_flip_left_right(std::uint64_t seed = 0, double probability = 0.5) {
  stage s;
  s.name = "random_flip_left_right";
  s.output_shape = [](const kiln::dims& in) {
    std::int64_t h, w, c;
    detail::image_dims(in, "random_flip_left_right", h, w, c);
    return in;
  };
  s.apply = [seed, probability](const float* in, float* out, const kiln::dims& shape, const sample_info& info) {
    std::int64_t h, w, c;
    detail::image_dims(shape, "random_flip_left_right", h, w, c);
    const std::uint64_t key = mix64(info.seed ^ mix64(seed ^ 0x666c6970ull) ^ mix64(std::uint64_t(info.epoch) + 0x65706f6368ull));
    if (in != out) std::memcpy(out, in, std::size_t(h * w * c) * sizeof(float));
    if (!(uniform01(key, std::uint64_t(info.storage_index)) < probability)) return;
    for (std::int64_t y = 0; y < h; ++y) {
      float* row = out + y * w * c;
      for (std::int64_t x = 0; x < w / 2; ++x)
        for (std::int64_t k = 0; k < c; ++k) std::swap(row[x * c + k], row[(w - 1 - x) * c + k]);
    }
  };
  return s;
}

// Keeps the central `fraction` of height and width, with tf.image.central_crop's arithmetic:
// start = floor((size - size * fraction) / 2), kept = size - 2 * start.
inline stage central_crop(double fraction) {
  if (!(fraction > 0 && fraction <= 1)) throw error("kiln: central_crop fraction must be in (0, 1], got " + std::to_string(fraction));
  stage s;
  s.name = "central_crop";
  s.in_place = false;
  auto start_of = [fraction](std::int64_t size) { return std::int64_t((double(size) - double(size) * fraction) / 2); };
  s.output_shape = [start_of](const kiln::dims& in) {
    std::int64_t h, w, c;
    detail::image_dims(in, "central_crop", h, w, c);
    kiln::dims out = in;
    out.d[0] = h - 2 * start_of(h);
    out.d[1] = w - 2 * start_of(w);
    return out;
  };
  s.apply = [start_of](const float* in, float* out, const kiln::dims& shape, const sample_info&) {
    std::int64_t h, w, c;
    detail::image_dims(shape, "central_crop", h, w, c);
    const std::int64_t y0 = start_of(h), x0 = start_of(w), kept_h = h - 2 * y0, kept_w = w - 2 * x0;
    for (std::int64_t y = 0; y < kept_h; ++y)
      std::memcpy(out + y * kept_w * c, in + ((y + y0) * w + x0) * c, std::size_t(kept_w * c) * sizeof(float));
  };
  return s;
}

// ---- pipeline ---------------------------------------------------------------------------------------

struct pipeline_options {
  std::int64_t batch_size = 32;
  bool shuffle = true;
  bool drop_remainder = false;  // drop the last partial batch of an epoch
  std::uint64_t seed = 0;
  int prefetch = 2;             // batches prepared ahead of the consumer; 0: prepared inside next()
  int workers = 1;              // threads preparing batches when prefetch > 0
};

// One batch, valid until the next call to next() or begin_epoch() of its pipeline. The views
// feed an executor directly: exe.run({{"x", b.features}, {"y", b.labels}}).
struct batch {
  value_ref features;           // f32 [size, sample_shape...]
  value_ref labels;             // i32 [size]
  std::int64_t size = 0;
  std::int64_t epoch = 0;
  std::int64_t index = 0;       // batch number within the epoch
};

class pipeline {
 public:
  pipeline(dataset data, pipeline_options options, std::vector<stage> stages = {})
      : data_(std::move(data)), options_(options), stages_(std::move(stages)) {
    if (options_.batch_size <= 0) throw error("kiln: pipeline batch_size must be positive, got " + std::to_string(options_.batch_size));
    if (options_.prefetch < 0 || options_.workers < 1)
      throw error("kiln: pipeline needs prefetch >= 0 and workers >= 1, got prefetch " + std::to_string(options_.prefetch) + ", workers " +
                  std::to_string(options_.workers));
    shapes_.push_back(data_.sample_shape());
    std::int64_t largest = data_.sample_elements();
    for (const auto& s : stages_) {
      if (!s.apply) throw error("kiln: pipeline stage '" + s.name + "' has no apply function");
      shapes_.push_back(s.output_shape(shapes_.back()));
      largest = std::max(largest, shapes_.back().elements());
      if (!s.in_place) ++out_of_place_;
    }
    const std::int64_t n = data_.size(), b = options_.batch_size;
    batches_per_epoch_ = options_.drop_remainder ? n / b : (n + b - 1) / b;
    // One slot is the consumer's; the others are being filled or wait in line. A slot holds the
    // largest batch an epoch can have: no more samples than the dataset holds, whatever batch_size.
    const int slots = options_.prefetch == 0 ? 1 : std::max(options_.prefetch, options_.workers) + 1;
    const std::int64_t slot_samples = std::min(b, n);
    std::int64_t slot_floats = 0;
    if (__builtin_mul_overflow(slot_samples, largest, &slot_floats) || std::uint64_t(slot_floats) > std::vector<float>().max_size())
      throw error("kiln: pipeline batch_size " + std::to_string(b) + " of samples of " + std::to_string(largest) +
                  " values is too large to allocate");
    try {
      slots_.resize(std::size_t(slots));
      for (auto& s : slots_) {
        s.features.resize(std::size_t(slot_floats));
        if (out_of_place_ > 0) s.scratch.resize(std::size_t(slot_floats));
        s.labels.resize(std::size_t(slot_samples));
      }
    } catch (const std::bad_alloc&) {
      throw error("kiln: pipeline batch_size " + std::to_string(b) + ": cannot allocate " + std::to_string(slots) + " batch buffers of " +
                  std::to_string(slot_samples) + " samples x " + std::to_string(largest) + " floats");
    }
  }
  pipeline(const pipeline&) = delete;
  pipeline& operator=(const pipeline&) = delete;
  ~pipeline() { stop_workers(); }

  std::int64_t batches_per_epoch() const { return batches_per_epoch_; }
  std::int64_t samples() const { return data_.size(); }
  const kiln::dims& sample_shape() const { return shapes_.back(); }  // after the map stages
  const pipeline_options& options() const { return options_; }

  // Positions into the dataset in the order epoch `e` visits them.
  std::vector<std::int64_t> order(std::int64_t e) const {
    return options_.shuffle ? permutation(data_.size(), epoch_key(e)) : identity();
  }

  // Starts epoch e. The workers run ahead into epoch e + 1 as the end of e nears, so calling
  // begin_epoch(e + 1) after the last batch of e continues without a restart.
  void begin_epoch(std::int64_t e) {
    release_held();
    const bool at_epoch_start = started_ && !failed_ && e >= stream_start_ && consumer_seq_ == (e - stream_start_) * batches_per_epoch_;
    epoch_ = e;
    if (at_epoch_start && (running_ || options_.prefetch == 0 || batches_per_epoch_ == 0)) return;
    stop_workers();
    stream_start_ = e;
    consumer_seq_ = 0;
    claimed_ = 0;
    released_ = 0;
    failed_ = nullptr;
    for (auto& s : slots_) {
      s.seq = -1;
      s.error = nullptr;
    }
    {
      std::lock_guard lock(order_mutex_);
      orders_.clear();
    }
    started_ = true;
    if (options_.prefetch > 0 && batches_per_epoch_ > 0) {
      stopping_ = false;
      running_ = true;
      for (int w = 0; w < options_.workers; ++w) workers_.emplace_back([this] { work(); });
    }
  }

  // The next batch of the current epoch, or nullptr after its last one. Rethrows an exception a
  // map stage threw while preparing this batch.
  const batch* next() {
    if (!started_) throw error("kiln: pipeline::next() called before begin_epoch()");
    release_held();
    if (failed_) std::rethrow_exception(failed_);
    const std::int64_t n = consumer_seq_;
    if (n >= (epoch_ - stream_start_ + 1) * batches_per_epoch_) return nullptr;
    slot& s = slots_[std::size_t(n % std::int64_t(slots_.size()))];
    if (options_.prefetch == 0) {
      try {
        fill(s, n);
      } catch (...) {
        failed_ = std::current_exception();
        throw;
      }
    } else {
      std::unique_lock lock(mutex_);
      ready_.wait(lock, [&] { return s.seq == n; });
      if (s.error) {
        failed_ = s.error;
        std::rethrow_exception(failed_);
      }
    }
    held_ = true;
    consumer_seq_ = n + 1;
    return &s.view;
  }

  // for (const batch& b : pipe.epoch(e)) ...
  class epoch_range {
   public:
    struct end_marker {};
    class iterator {
     public:
      const batch& operator*() const { return *current_; }
      const batch* operator->() const { return current_; }
      iterator& operator++() {
        current_ = owner_->next();
        return *this;
      }
      bool operator==(end_marker) const { return current_ == nullptr; }

     private:
      friend class epoch_range;
      iterator(pipeline* owner, const batch* current) : owner_(owner), current_(current) {}
      pipeline* owner_;
      const batch* current_;
    };
    iterator begin() {
      owner_->begin_epoch(epoch_);
      return {owner_, owner_->next()};
    }
    end_marker end() const { return {}; }

   private:
    friend class pipeline;
    epoch_range(pipeline* owner, std::int64_t e) : owner_(owner), epoch_(e) {}
    pipeline* owner_;
    std::int64_t epoch_;
  };
  epoch_range epoch(std::int64_t e) { return {this, e}; }

 private:
  struct slot {
    std::vector<float> features, scratch;
    std::vector<std::int32_t> labels;
    batch view;
    std::int64_t seq = -1;  // the batch this slot holds once it is ready
    std::exception_ptr error;
  };

  std::vector<std::int64_t> identity() const {
    std::vector<std::int64_t> p(std::size_t(data_.size()));
    for (std::int64_t i = 0; i < data_.size(); ++i) p[std::size_t(i)] = i;
    return p;
  }
  std::uint64_t epoch_key(std::int64_t e) const { return mix64(options_.seed ^ 0x73687566666c65ull) ^ mix64(std::uint64_t(e)); }

  // Shared by the workers filling batches of the same epoch; computed once per epoch.
  std::shared_ptr<const std::vector<std::int64_t>> order_of(std::int64_t e) {
    std::lock_guard lock(order_mutex_);
    auto it = orders_.find(e);
    if (it != orders_.end()) return it->second;
    auto made = std::make_shared<const std::vector<std::int64_t>>(options_.shuffle ? permutation(data_.size(), epoch_key(e)) : identity());
    // Workers stay within a few batches of the consumer, so at most two epochs are ever in use.
    while (!orders_.empty() && orders_.begin()->first < e - 1) orders_.erase(orders_.begin());
    orders_.emplace(e, made);
    return made;
  }

  void fill(slot& s, std::int64_t seq) {
    const std::int64_t e = stream_start_ + seq / batches_per_epoch_, index = seq % batches_per_epoch_;
    const std::int64_t begin = index * options_.batch_size;
    const std::int64_t count = std::min(options_.batch_size, data_.size() - begin);
    const auto order = order_of(e);
    // Plan the ping-pong so that the last out-of-place stage writes into `features`.
    float* current = out_of_place_ % 2 == 0 ? s.features.data() : s.scratch.data();
    float* other = out_of_place_ % 2 == 0 ? s.scratch.data() : s.features.data();
    const std::int64_t elements = data_.sample_elements();
    for (std::int64_t i = 0; i < count; ++i) {
      const std::int64_t position = (*order)[std::size_t(begin + i)];
      std::memcpy(current + i * elements, data_.features(position).data(), std::size_t(elements) * sizeof(float));
      s.labels[std::size_t(i)] = data_.label(position);
    }
    for (std::size_t k = 0; k < stages_.size(); ++k) {
      const stage& st = stages_[k];
      const std::int64_t in_elements = shapes_[k].elements(), out_elements = shapes_[k + 1].elements();
      float* target = st.in_place ? current : other;
      for (std::int64_t i = 0; i < count; ++i) {
        const sample_info info{options_.seed, e, data_.storage_index((*order)[std::size_t(begin + i)])};
        st.apply(current + i * in_elements, target + i * out_elements, shapes_[k], info);
      }
      if (!st.in_place) std::swap(current, other);
    }
    const kiln::dims& out = shapes_.back();
    kiln::dims fd;
    fd.rank = out.rank + 1;
    fd.d[0] = count;
    for (int i = 0; i < out.rank; ++i) fd.d[i + 1] = out.d[i];
    s.view.features = kiln::view(static_cast<const float*>(current), fd);
    s.view.labels = kiln::view(static_cast<const std::int32_t*>(s.labels.data()), kiln::dims{count});
    s.view.size = count;
    s.view.epoch = e;
    s.view.index = index;
  }

  void work() {
    const auto n_slots = std::int64_t(slots_.size());
    for (;;) {
      std::int64_t seq;
      {
        std::unique_lock lock(mutex_);
        free_.wait(lock, [&] { return stopping_ || claimed_ - released_ < n_slots; });
        if (stopping_) return;
        seq = claimed_++;
      }
      slot& s = slots_[std::size_t(seq % n_slots)];
      std::exception_ptr caught;
      try {
        fill(s, seq);
      } catch (...) {
        caught = std::current_exception();
      }
      {
        std::lock_guard lock(mutex_);
        s.error = caught;
        s.seq = seq;
      }
      ready_.notify_all();
    }
  }

  void release_held() {
    if (!held_) return;
    held_ = false;
    {
      std::lock_guard lock(mutex_);
      released_ = consumer_seq_;
    }
    free_.notify_all();
  }

  void stop_workers() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    free_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    running_ = false;
  }

  dataset data_;
  pipeline_options options_;
  std::vector<stage> stages_;
  std::vector<kiln::dims> shapes_;  // sample shape before stage k, and after the last
  int out_of_place_ = 0;
  std::int64_t batches_per_epoch_ = 0;
  std::vector<slot> slots_;

  // The stream: batch `seq` belongs to epoch stream_start_ + seq / batches_per_epoch_.
  std::int64_t stream_start_ = 0, epoch_ = 0, consumer_seq_ = 0;
  bool started_ = false, held_ = false, running_ = false;
  std::exception_ptr failed_;

  std::mutex mutex_;
  std::condition_variable free_, ready_;
  std::int64_t claimed_ = 0, released_ = 0;
  bool stopping_ = false;
  std::vector<std::thread> workers_;

  std::mutex order_mutex_;
  std::map<std::int64_t, std::shared_ptr<const std::vector<std::int64_t>>> orders_;
};

}  // namespace kiln::data
