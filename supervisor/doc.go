// Package supervisor runs each app's pools of Python workers: it spawns
// them, waits until they are ready, dispatches requests to idle workers
// only, times requests out, replaces workers that die, recycles and
// scales them, and swaps whole generations on reload.
//
// Each worker is reached through lanes, one socketpair per Python thread
// (process.go), and sits in a slot whose goroutine (slot.run, slot.go)
// replaces, recycles and checks it. That goroutine owns the worker's first
// lane except while it waits for an event: it then lends the lane, and a
// request that finds the worker idle and nothing queued is served on the
// goroutine that asked (Pool.Do, slot.direct in direct.go), which gives
// the lane back when its exchange closes. The lane has one owner at a
// time, recorded in slot.owner. When requests queue, the slots' goroutines
// take them from the app's queue, and a worker's other lanes are served
// from the queue by a goroutine each (slot.runLane). A lane is given
// requests only when idle, so the queue is the only place requests wait:
// one at a time while nothing queues, else a batch sized from the app's
// pace (slot.batch), whose answers the worker is asked for as they are
// made when the batch runs late (slot.batchOverdue).
package supervisor
