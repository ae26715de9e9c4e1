//! Redis's glob matching (`stringmatchlen`): `*`, `?`, `[...]` with ranges and `^`, and
//! `\` escapes, optionally case-insensitive.
//!
//! Owns nothing but the algorithm, ported from `util.c` with the same quirks (a `[` set
//! left open at the end of the pattern, the nesting cap against abusive patterns). Never
//! allocates.

/// Whether `string` matches `pattern`.
pub fn string_match(pattern: &[u8], string: &[u8], nocase: bool) -> bool {
    let mut skip_longer = false;
    match_impl(pattern, string, nocase, &mut skip_longer, 0)
}

fn lower(c: u8, nocase: bool) -> u8 {
    if nocase { c.to_ascii_lowercase() } else { c }
}

fn match_impl(
    pattern: &[u8],
    string: &[u8],
    nocase: bool,
    skip_longer: &mut bool,
    nesting: u32,
) -> bool {
    if nesting > 1000 {
        return false;
    }
    // `pat(i)` reads like the C code's NUL-terminated pattern.
    let pat = |i: usize| pattern.get(i).copied().unwrap_or(0);
    let (mut p, mut s) = (0usize, 0usize);
    while p < pattern.len() && s < string.len() {
        match pattern[p] {
            b'*' => {
                while p + 1 < pattern.len() && pattern[p + 1] == b'*' {
                    p += 1;
                }
                if p + 1 == pattern.len() {
                    return true;
                }
                while s < string.len() {
                    if match_impl(&pattern[p + 1..], &string[s..], nocase, skip_longer, nesting + 1)
                    {
                        return true;
                    }
                    if *skip_longer {
                        return false;
                    }
                    s += 1;
                }
                *skip_longer = true;
                return false;
            }
            b'?' => s += 1,
            b'[' => {
                p += 1;
                let not = pat(p) == b'^';
                if not {
                    p += 1;
                }
                let mut matched = false;
                let c = string[s];
                loop {
                    if pat(p) == b'\\' && pattern.len() - p >= 2 {
                        p += 1;
                        if pat(p) == c {
                            matched = true;
                        }
                    } else if pat(p) == b']' {
                        break;
                    } else if p >= pattern.len() {
                        // An unclosed set: the C code steps back so that the common
                        // step below lands on the end again.
                        p -= 1;
                        break;
                    } else if pattern.len() - p >= 3 && pat(p + 1) == b'-' {
                        let (mut start, mut end) = (pat(p), pat(p + 2));
                        if start > end {
                            core::mem::swap(&mut start, &mut end);
                        }
                        let (start, end, ch) =
                            (lower(start, nocase), lower(end, nocase), lower(c, nocase));
                        p += 2;
                        if ch >= start && ch <= end {
                            matched = true;
                        }
                    } else if lower(pat(p), nocase) == lower(c, nocase) {
                        matched = true;
                    }
                    p += 1;
                }
                if not {
                    matched = !matched;
                }
                if !matched {
                    return false;
                }
                s += 1;
            }
            b => {
                let mut b = b;
                if b == b'\\' && pattern.len() - p >= 2 {
                    p += 1;
                    b = pattern[p];
                }
                if lower(b, nocase) != lower(string[s], nocase) {
                    return false;
                }
                s += 1;
            }
        }
        p += 1;
        if s == string.len() {
            while p < pattern.len() && pattern[p] == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pattern.len() && s == string.len()
}

#[cfg(test)]
mod tests {
    use super::string_match;

    #[test]
    fn globs() {
        let yes: &[(&str, &str)] = &[
            ("*", "anything"),
            ("sav?", "save"),
            ("*max-*", "proto-max-bulk-len"),
            ("[a-c]at", "bat"),
            ("[^a-c]at", "rat"),
            ("h\\*llo", "h*llo"),
            ("SAVE", "save"),
            ("a*", "a"),
        ];
        for (p, s) in yes {
            assert!(string_match(p.as_bytes(), s.as_bytes(), true), "{p} {s}");
        }
        let no: &[(&str, &str)] =
            &[("sav?", "saves"), ("[a-c]at", "rat"), ("a*b", "acd"), ("", "x"), ("x", "")];
        for (p, s) in no {
            assert!(!string_match(p.as_bytes(), s.as_bytes(), true), "{p} {s}");
        }
        assert!(!string_match(b"SAVE", b"save", false));
        // As in Redis, `*` does not match the empty string.
        assert!(!string_match(b"*", b"", false));
        // Abusive patterns end quickly.
        let p = "a*".repeat(40) + "b";
        assert!(!string_match(p.as_bytes(), "a".repeat(60).as_bytes(), false));
        // An unclosed set never reads past the pattern.
        assert!(string_match(b"[ab", b"a", false));
        assert!(!string_match(b"[", b"a", false));
    }
}
