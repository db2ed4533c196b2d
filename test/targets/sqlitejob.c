/*
 * sqlitejob: a job writing transactions to an SQLite database, for the
 * checkpoint of a database in the middle of its work. Each transaction
 * reads the row the job wrote last, checks it against what the job
 * remembers, and inserts the next one: a running counter and a checksum
 * of every row before it. SQLite holds POSIX byte-range locks on the
 * database, its journal and, in WAL mode, its -shm file, which it also
 * maps shared (sqlite.org/lockingv3.html, sqlite.org/walformat.html).
 *
 * usage: sqlitejob RESULT_PATH DB wal|delete mid|between ROUNDS BATCH
 *
 * Round by round, it commits BATCH transactions, then pauses at the dump
 * point: "mid" inside an open transaction (BEGIN IMMEDIATE and an INSERT,
 * not committed: it holds its write locks and, in rollback mode, a
 * journal), "between" with none open. It says where it paused by writing
 * the round's number to DB.paused (RESULT_PATH.ready the first time) and
 * waits for SIGUSR1. After ROUNDS pauses and one more batch it waits for
 * SIGTERM, closes its connection and checks the file from a new one:
 * PRAGMA integrity_check is ok and the rows are exactly 1..N with the
 * right checksums, N the last the job committed.
 */
#include "target.h"

#include <sqlite3.h>
#include <stdint.h>

static sqlite3 *db;
static const char *db_path;
static int64_t last;   /* the last counter committed */
static uint64_t sum;   /* its checksum */

/* next_sum is the checksum of row n given the checksum of the rows
 * before it (FNV-1a over the previous checksum and n). */
static uint64_t next_sum(uint64_t prev, int64_t n)
{
	uint64_t h = 14695981039346656037ull;
	uint64_t v[2] = {prev, (uint64_t)n};

	for (int i = 0; i < 2; i++)
		for (int b = 0; b < 8; b++) {
			h ^= (v[i] >> (8 * b)) & 0xff;
			h *= 1099511628211ull;
		}
	return h >> 1; /* an SQLite INTEGER is signed */
}

static void exec_sql(const char *sql)
{
	char *err = NULL;

	if (sqlite3_exec(db, sql, NULL, NULL, &err) != SQLITE_OK)
		tgt_fail("%s (at row %lld): %s", sql, (long long)last, err ? err : sqlite3_errmsg(db));
}

static sqlite3_stmt *prepare(const char *sql)
{
	sqlite3_stmt *st;

	if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
		tgt_fail("prepare %s: %s", sql, sqlite3_errmsg(db));
	return st;
}

/* insert_next checks the last row the job committed is there as it was
 * written, then inserts the next one, inside the open transaction. */
static void insert_next(void)
{
	sqlite3_stmt *get = prepare("SELECT sum FROM rows WHERE n = ?1");
	sqlite3_stmt *put = prepare("INSERT INTO rows (n, sum) VALUES (?1, ?2)");

	if (last > 0) {
		sqlite3_bind_int64(get, 1, last);
		if (sqlite3_step(get) != SQLITE_ROW)
			tgt_fail("row %lld, committed, is missing: %s", (long long)last, sqlite3_errmsg(db));
		if ((uint64_t)sqlite3_column_int64(get, 0) != sum)
			tgt_fail("row %lld has checksum %lld, want %llu", (long long)last,
				 (long long)sqlite3_column_int64(get, 0), (unsigned long long)sum);
	}
	sqlite3_bind_int64(put, 1, last + 1);
	sqlite3_bind_int64(put, 2, (int64_t)next_sum(sum, last + 1));
	if (sqlite3_step(put) != SQLITE_DONE)
		tgt_fail("insert row %lld: %s", (long long)last + 1, sqlite3_errmsg(db));
	sqlite3_finalize(get);
	sqlite3_finalize(put);
}

static void committed(void)
{
	last++;
	sum = next_sum(sum, last);
}

static void batch(int n)
{
	for (int i = 0; i < n; i++) {
		exec_sql("BEGIN IMMEDIATE");
		insert_next();
		exec_sql("COMMIT");
		committed();
	}
}

/* announce says the job waits at round r's dump point. */
static void announce(int r)
{
	char path[4096 + 16], text[32];
	int fd;

	if (r == 0) {
		tgt_ready();
		return;
	}
	snprintf(path, sizeof(path), "%s.paused", db_path);
	snprintf(text, sizeof(text), "%d\n", r);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		tgt_fail("open %s: %s", path, strerror(errno));
	tgt_write_all(fd, text, strlen(text));
	close(fd);
}

static void wait_usr1(void)
{
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	while ((sig = sigwaitinfo(&set, NULL)) < 0 && errno == EINTR)
		;
	if (sig != SIGUSR1)
		tgt_fail("sigwaitinfo: %s", strerror(errno));
}

static void verify(void)
{
	sqlite3_stmt *st;
	uint64_t s = 0;
	int64_t n = 0;

	if (sqlite3_close(db) != SQLITE_OK)
		tgt_fail("close the job's connection: %s", sqlite3_errmsg(db));
	if (sqlite3_open(db_path, &db) != SQLITE_OK)
		tgt_fail("open %s again: %s", db_path, sqlite3_errmsg(db));
	st = prepare("PRAGMA integrity_check");
	if (sqlite3_step(st) != SQLITE_ROW)
		tgt_fail("integrity_check: %s", sqlite3_errmsg(db));
	if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0)
		tgt_fail("integrity_check: %s", sqlite3_column_text(st, 0));
	sqlite3_finalize(st);
	st = prepare("SELECT n, sum FROM rows ORDER BY n");
	while (sqlite3_step(st) == SQLITE_ROW) {
		n++;
		s = next_sum(s, n);
		if (sqlite3_column_int64(st, 0) != n)
			tgt_fail("row %lld where row %lld should be", (long long)sqlite3_column_int64(st, 0), (long long)n);
		if ((uint64_t)sqlite3_column_int64(st, 1) != s)
			tgt_fail("row %lld has checksum %lld, want %llu", (long long)n,
				 (long long)sqlite3_column_int64(st, 1), (unsigned long long)s);
	}
	sqlite3_finalize(st);
	if (n != last)
		tgt_fail("%lld rows, the job committed %lld", (long long)n, (long long)last);
	sqlite3_close(db);
	tgt_log("%lld rows, every one once with its checksum\n", (long long)n);
}

int main(int argc, char **argv)
{
	const char *mode, *point;
	sigset_t usr1;
	int rounds, size;

	tgt_init(argc, argv);
	if (argc != 7)
		tgt_fail("usage: sqlitejob RESULT_PATH DB wal|delete mid|between ROUNDS BATCH");
	db_path = argv[2];
	mode = argv[3];
	point = argv[4];
	rounds = atoi(argv[5]);
	size = atoi(argv[6]);
	/* SIGUSR1 waits for sigwaitinfo, blocked from the start. */
	sigemptyset(&usr1);
	sigaddset(&usr1, SIGUSR1);
	sigprocmask(SIG_BLOCK, &usr1, NULL);

	if (sqlite3_open(db_path, &db) != SQLITE_OK)
		tgt_fail("open %s: %s", db_path, sqlite3_errmsg(db));
	/* A busy database (another process reading it) is waited for. */
	sqlite3_busy_timeout(db, 10000);
	if (strcmp(mode, "wal") == 0)
		exec_sql("PRAGMA journal_mode=WAL");
	else
		exec_sql("PRAGMA journal_mode=DELETE");
	exec_sql("CREATE TABLE rows (n INTEGER PRIMARY KEY, sum INTEGER NOT NULL)");

	for (int r = 0; r <= rounds; r++) {
		batch(size);
		if (r == rounds)
			break;
		if (strcmp(point, "mid") == 0) {
			exec_sql("BEGIN IMMEDIATE");
			insert_next();
			announce(r);
			wait_usr1();
			exec_sql("COMMIT");
			committed();
		} else {
			announce(r);
			wait_usr1();
		}
	}
	announce(rounds);
	tgt_wait();
	verify();
	tgt_pass();
}
