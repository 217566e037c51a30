//! The kernel command line (`/chosen/bootargs`): `hz=N`, `nokaslr`,
//! `norandmaps`, `overcommit=guess|always|never`, `test=NAME`.
//! Unknown words are ignored, as Linux ignores unknown parameters.

/// Parsed boot options.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cmdline<'a> {
    /// Timer interrupt rate (LKD ch. 11: HZ); 100 by default.
    pub hz: u32,
    /// Address-space randomization (on unless `nokaslr` or `norandmaps`).
    pub randomize: bool,
    /// Overcommit policy name.
    pub overcommit: &'a str,
    /// A built-in test to run instead of the normal boot (`test=NAME`).
    pub test: Option<&'a str>,
}

impl<'a> Cmdline<'a> {
    /// Parses a command line.
    pub fn parse(s: &'a str) -> Self {
        let mut c = Cmdline { hz: 100, randomize: true, overcommit: "guess", test: None };
        for word in s.split_ascii_whitespace() {
            match word.split_once('=') {
                Some(("hz", v)) => {
                    if let Ok(hz) = v.parse::<u32>()
                        && (1..=10_000).contains(&hz)
                    {
                        c.hz = hz;
                    }
                }
                Some(("overcommit", v)) if matches!(v, "guess" | "always" | "never") => c.overcommit = v,
                Some(("test", v)) => c.test = Some(v),
                None if word == "nokaslr" || word == "norandmaps" => c.randomize = false,
                _ => {}
            }
        }
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_known_words_and_ignores_the_rest() {
        let c = Cmdline::parse("console=ttyAMA0 hz=250 nokaslr test=mm overcommit=never");
        assert_eq!(c, Cmdline { hz: 250, randomize: false, overcommit: "never", test: Some("mm") });
        let d = Cmdline::parse("hz=0 hz=abc overcommit=maybe");
        assert_eq!(d.hz, 100);
        assert_eq!(d.overcommit, "guess");
    }
}
