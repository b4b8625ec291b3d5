// Result: a value or an error. g++ 12 has no std::expected; the pure DTCP code
// returns these instead of throwing, so that every failure is an ordinary value.
#pragma once

#include <utility>
#include <variant>

namespace xtap::dtcp {

// Wraps an error so that Result<T, E> stays unambiguous even when T and E are
// the same type.
template <typename E>
struct Failure {
    E error;
};

template <typename E>
Failure<E> fail(E error) {
    return Failure<E>{std::move(error)};
}

template <typename T, typename E>
class Result {
  public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(Failure<E> failure) : state_(std::in_place_index<1>, std::move(failure.error)) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    T& value() { return std::get<0>(state_); }
    const T& value() const { return std::get<0>(state_); }
    E& error() { return std::get<1>(state_); }
    const E& error() const { return std::get<1>(state_); }

  private:
    std::variant<T, E> state_;
};

}  // namespace xtap::dtcp
