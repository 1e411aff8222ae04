//! What a process uses, from `/proc`: CPU time and threads.
//! Included by `tests/common` and `benches/nar_flood`.

/// CPU time (user and system) process `pid` used so far, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    stat_cpu_ticks(&format!("/proc/{pid}/stat"))
}

/// CPU ticks from a `stat` file of `/proc` (a process's or a thread's); 0 if it is gone.
pub fn stat_cpu_ticks(stat_file: &str) -> u64 {
    let Ok(stat) = std::fs::read_to_string(stat_file) else {
        return 0;
    };
    // The fields after the parenthesised command name; utime and stime are the 12th and 13th.
    let after_name = stat.rsplit(')').next().unwrap_or_default();
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let field = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    field(11) + field(12)
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux wherever it was asked).
pub const TICKS_PER_SECOND: u64 = 100;

pub fn threads(pid: u32) -> u64 {
    status_field(pid, "Threads:")
}

/// A numeric field of `/proc/<pid>/status` (a trailing `kB` dropped).
pub fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{field} in /proc status"))
}
