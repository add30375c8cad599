// graphile-worker's side of genq-bench's `pg-queue` figure
// (crates/bench/src/pg_queue.rs runs it; `npm ci` installs it).
//
//   node bench.mjs --url postgres://postgres@127.0.0.1:5432/DB --jobs N --concurrency C [--batch B] [--each]
//
// On an empty database it runs graphile-worker's migrations, then:
//   1. enqueues N no-op jobs with `addJobs` (WorkerUtils), the documented bulk
//      path: ONE call of the SQL function graphile_worker.add_jobs(job_spec[]),
//      so one statement and one commit for all N jobs;
//   2. drains them with `run()` at concurrency C (task list with one no-op
//      task, default pollInterval and no local queue or completion batching:
//      graphile-worker's defaults), until every job has been written back
//      ("job:complete" fires after the DELETE of a finished job);
//   3. with --batch B: enqueues N more with `addJobs` in calls of B jobs, one
//      after another (genq's batch route takes at most 1,000 jobs a call, so
//      this is the like-for-like bulk figure); not drained either (below);
//   4. with --each: enqueues N more one `addJob` call at a time from C
//      concurrent callers (the same shape as genq's submissions: a statement
//      and a commit per job). Those are not drained: the database is thrown
//      away after the run, and a second drain would only lengthen it.
// It prints one JSON line of timings in seconds on stdout; logs go to stderr.

import { Logger, makeWorkerUtils, run, runMigrations } from "graphile-worker";
import pg from "pg";

const args = parseArgs(process.argv.slice(2));
const N = args.jobs;
const C = args.concurrency;

// graphile-worker's info lines ("Worker connected…") would bury the
// harness's progress; warnings and errors still reach stderr.
const logger = new Logger(() => (level, message) => {
  if (level === "error" || level === "warning") {
    process.stderr.write(`graphile-worker ${level}: ${message}\n`);
  }
});

// One pool for enqueuing and running, as genq's side uses one store: the
// drain starts on warm connections on both sides. 10 is graphile-worker's
// default maxPoolSize and genq's default PostgreSQL pool size.
const pgPool = new pg.Pool({ connectionString: args.url, max: 10 });
// An idle client's error must not crash the process (graphile-worker
// checks that both handlers are there).
pgPool.on("error", (e) => process.stderr.write(`pg pool error: ${e}\n`));
pgPool.on("connect", (client) =>
  client.on("error", (e) => process.stderr.write(`pg client error: ${e}\n`)),
);
const options = { pgPool, logger, noHandleSignals: true };

try {
  await runMigrations(options);
  const utils = await makeWorkerUtils(options);
  const result = { jobs: N, concurrency: C, graphileWorker: "0.17.3" };
  try {
    result.enqueueBulkSecs = await timed(() =>
      utils.addJobs(Array.from({ length: N }, () => ({ identifier: "noop", payload: {} }))),
    );
    result.drainSecs = await drain();
    if (args.batch) {
      result.enqueueBatchedSecs = await timed(async () => {
        for (let done = 0; done < N; done += args.batch) {
          const n = Math.min(args.batch, N - done);
          await utils.addJobs(Array.from({ length: n }, () => ({ identifier: "noop", payload: {} })));
        }
      });
    }
    if (args.each) {
      let next = 0;
      result.enqueueEachSecs = await timed(() =>
        Promise.all(
          Array.from({ length: C }, async () => {
            while (next < N) {
              next += 1;
              await utils.addJob("noop", {});
            }
          }),
        ),
      );
    }
  } finally {
    await utils.release();
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await pgPool.end();
}

/** Runs a worker at concurrency C until N jobs are complete; its seconds. */
async function drain() {
  const { EventEmitter } = await import("node:events");
  const events = new EventEmitter();
  let completed = 0;
  let failed = 0;
  const done = new Promise((resolve) => {
    events.on("job:complete", ({ error }) => {
      if (error) failed += 1;
      completed += 1;
      if (completed === N) resolve();
    });
  });
  const started = process.hrtime.bigint();
  const runner = await run({
    ...options,
    concurrency: C,
    events,
    taskList: { noop: async () => {} },
  });
  await done;
  const secs = Number(process.hrtime.bigint() - started) / 1e9;
  await runner.stop();
  if (failed > 0) throw new Error(`${failed} of ${N} no-op jobs failed`);
  return secs;
}

async function timed(f) {
  const started = process.hrtime.bigint();
  await f();
  return Number(process.hrtime.bigint() - started) / 1e9;
}

function parseArgs(argv) {
  const out = { url: undefined, jobs: 1000, concurrency: 8, batch: 0, each: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--url") out.url = argv[++i];
    else if (a === "--jobs") out.jobs = Number(argv[++i]);
    else if (a === "--concurrency") out.concurrency = Number(argv[++i]);
    else if (a === "--batch") out.batch = Number(argv[++i]);
    else if (a === "--each") out.each = true;
    else throw new Error(`unknown argument ${a}`);
  }
  if (!out.url) throw new Error("--url is required");
  if (!(out.jobs > 0 && out.concurrency > 0 && out.batch >= 0)) {
    throw new Error("--jobs and --concurrency must be positive, --batch not negative");
  }
  return out;
}
