// The reference of tests/perf/bench_jobs.py: the same small jobs through BullMQ 5.
//
//   node bench.mjs worker     a Worker (CONCURRENCY jobs at once) whose job inserts its
//                             10 ids into the target list: INSERT ... ON CONFLICT DO NOTHING
//   node bench.mjs producer   adds JOBS jobs, IN_FLIGHT adds at a time, follows each to
//                             `completed` with QueueEvents; prints one JSON line
//   node bench.mjs clean      removes the queue's keys (obliterate)
//
// Settings from the environment: REDIS_URL, DATABASE_URL, PG_SCHEMA, QUEUE, PREFIX (the
// Redis key prefix, apart from Conveyor's streams), TARGET (list id), JOBS, IN_FLIGHT,
// CONCURRENCY, POOL (PostgreSQL connections of the worker), IDS (ids per job).
import { Queue, QueueEvents, Worker } from "bullmq";
import pg from "pg";

const env = process.env;
const redisUrl = new URL(env.REDIS_URL ?? "redis://127.0.0.1:6379/0");
const connection = {
  host: redisUrl.hostname,
  port: Number(redisUrl.port || 6379),
  db: Number(redisUrl.pathname.slice(1) || 0),
  ...(redisUrl.password ? { password: decodeURIComponent(redisUrl.password) } : {}),
  ...(redisUrl.username ? { username: decodeURIComponent(redisUrl.username) } : {}),
  maxRetriesPerRequest: null,
};
const queueName = env.QUEUE ?? "small-jobs";
const prefix = env.PREFIX ?? "bench-bullmq";
const jobs = Number(env.JOBS ?? 2000);
const inFlight = Number(env.IN_FLIGHT ?? 32);
const concurrency = Number(env.CONCURRENCY ?? 32);
const idsPerJob = Number(env.IDS ?? 10);

async function worker() {
  const pool = new pg.Pool({
    connectionString: env.DATABASE_URL,
    max: Number(env.POOL ?? concurrency),
    options: `-c search_path=${env.PG_SCHEMA ?? "public"}`,
  });
  const w = new Worker(
    queueName,
    async (job) => {
      const result = await pool.query(
        `INSERT INTO memberships (collection_id, company_id)
         SELECT $1::uuid, unnest($2::bigint[]) ON CONFLICT DO NOTHING`,
        [job.data.target, job.data.ids],
      );
      return { added: result.rowCount };
    },
    { connection, prefix, concurrency },
  );
  w.on("failed", (job, err) => console.error(`job ${job?.id} failed: ${err}`));
  await w.waitUntilReady();
  console.log("ready");
  const stop = async () => {
    await w.close();
    await pool.end();
    process.exit(0);
  };
  process.on("SIGTERM", stop);
  process.on("SIGINT", stop);
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.round((p / 100) * (sorted.length - 1)))];
}

async function producer() {
  const queue = new Queue(queueName, { connection, prefix });
  const events = new QueueEvents(queueName, { connection, prefix });
  await Promise.all([queue.waitUntilReady(), events.waitUntilReady()]);
  const posted = new Map();
  const took = [];
  let finish;
  const allDone = new Promise((resolve) => (finish = resolve));
  events.on("completed", ({ jobId }) => {
    const t0 = posted.get(jobId);
    if (t0 === undefined) return;
    posted.delete(jobId);
    took.push(performance.now() - t0);
    if (took.length === jobs) finish();
  });
  events.on("failed", ({ jobId, failedReason }) => {
    console.error(`job ${jobId} failed: ${failedReason}`);
  });
  let next = 0;
  const began = performance.now();
  const adder = async () => {
    while (next < jobs) {
      const i = next++;
      const ids = Array.from({ length: idsPerJob }, (_, k) => 1 + i * idsPerJob + k);
      const jobId = `job-${i}`;
      posted.set(jobId, performance.now());
      await queue.add("copy", { target: env.TARGET, ids }, { jobId });
    }
  };
  await Promise.all(Array.from({ length: inFlight }, adder));
  const addedS = (performance.now() - began) / 1000;
  await allDone;
  const seconds = (performance.now() - began) / 1000;
  took.sort((a, b) => a - b);
  console.log(
    JSON.stringify({
      jobs,
      seconds: Number(seconds.toFixed(3)),
      added_in_s: Number(addedS.toFixed(3)),
      jobs_per_s: Number((jobs / seconds).toFixed(1)),
      p50_ms: Number(percentile(took, 50).toFixed(1)),
      p99_ms: Number(percentile(took, 99).toFixed(1)),
    }),
  );
  await events.close();
  await queue.close();
}

async function clean() {
  const queue = new Queue(queueName, { connection, prefix });
  await queue.obliterate({ force: true });
  await queue.close();
}

const roles = { worker, producer, clean };
const role = roles[process.argv[2]];
if (!role) {
  console.error(`usage: node bench.mjs ${Object.keys(roles).join("|")}`);
  process.exit(2);
}
await role();
if (process.argv[2] !== "worker") process.exit(0);
