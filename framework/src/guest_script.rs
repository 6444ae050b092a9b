//! Guest shell scripts cut to what one SSH exec request carries: the guest's
//! dropbear refuses a command over 9000 bytes, so long scripts go in batches.

/// The most bytes of script one exec request carries, under dropbear's
/// `MAX_CMD_LEN` of 9000.
pub const MAX_SCRIPT_BYTES: usize = 8000;

/// A shell filter that puts a value on one line: tabs and newlines become
/// spaces, everything else stays as it is (no `echo`, which takes `-n`).
pub const ONE_LINE: &str = "tr '\\t\\n' '  '";

/// Joins `lines` into scripts of at most [`MAX_SCRIPT_BYTES`] each, keeping
/// their order; a single longer line gets a script of its own.
pub fn batches(lines: impl IntoIterator<Item = String>) -> Vec<String> {
    let mut scripts: Vec<String> = Vec::new();
    for line in lines {
        match scripts.last_mut() {
            Some(script) if script.len() + line.len() <= MAX_SCRIPT_BYTES => script.push_str(&line),
            _ => scripts.push(line),
        }
    }
    scripts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_fill_scripts_in_order_up_to_the_limit() {
        let line = |c: char, n: usize| format!("{}\n", c.to_string().repeat(n - 1));
        let lines = [
            line('a', 5_000),
            line('b', 3_000),
            line('c', 1_000),
            line('d', 9_000),
        ];
        let scripts = batches(lines.clone());
        let sizes: Vec<usize> = scripts.iter().map(String::len).collect();
        assert_eq!(sizes, [8_000, 1_000, 9_000]);
        assert_eq!(scripts.concat(), lines.concat());
        assert!(batches(Vec::new()).is_empty());
    }
}
