#pragma once

/// \file
/// BoostFiberContext: a PersistentPool keyed by Boost.Fiber fibers. Not part of the umbrella
/// header: include it explicitly and link Boost.Fiber (`-lboost_fiber -lboost_context`).

#include <boost/fiber/context.hpp>
#include <boost/fiber/fss.hpp>
#include <boost/fiber/type.hpp>

#include <memory>

namespace dbpool {

/// One connection per fiber: `PersistentPool<C, Clock, dbpool::BoostFiberContext>`. A fiber's
/// connections close when the fiber ends (its `fiber_specific_ptr` cleanup; a thread's main
/// fiber's at thread exit), or at pool close, whichever comes first. A fiber may migrate between
/// threads with its handles.
struct BoostFiberContext {
    /// The current fiber's T (the pool's table of this fiber's connections), created on first
    /// use and destroyed when the fiber ends.
    template <class T>
    static T& local() {
        if (boost::fibers::context::active()->is_context(boost::fibers::type::main_context)) {
            // Boost.Fiber never cleans up the main fiber's fiber-specific data (only a fiber
            // that terminates runs its cleanup): the main fiber's ends with its thread.
            thread_local T main_fiber;
            return main_fiber;
        }
        static boost::fibers::fiber_specific_ptr<T> slot;
        T* value = slot.get();
        if (value == nullptr) {
            auto created = std::make_unique<T>();
            slot.reset(created.get());
            value = created.release();  // the fiber_specific_ptr owns it now
        }
        return *value;
    }
};

}  // namespace dbpool
