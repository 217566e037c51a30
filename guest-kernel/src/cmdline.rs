//! The kernel command line (`/chosen/bootargs`): `hz=N`, `nokaslr`,
//! `norandmaps`, `overcommit=guess|always|never`, `init=PATH`, `test=NAME`.
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
    /// The first user program (`init=PATH`, as Linux's `init=`); `/bin/init`
    /// by default.
    pub init: &'a str,
    /// Arguments for init: the words after `--` (as Linux passes them).
    pub init_args: &'a str,
    /// A built-in test to run instead of the normal boot (`test=NAME`).
    pub test: Option<&'a str>,
}

impl<'a> Cmdline<'a> {
    /// Parses a command line.
    pub fn parse(s: &'a str) -> Self {
        let mut c =
            Cmdline { hz: 100, randomize: true, overcommit: "guess", init: "/bin/init", init_args: "", test: None };
        let s = match s.split_once(" -- ") {
            Some((kernel, init)) => {
                c.init_args = init.trim();
                kernel
            }
            None => s,
        };
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
                Some(("init", v)) if v.starts_with('/') => c.init = v,
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
        let c = Cmdline::parse("console=ttyAMA0 hz=250 nokaslr test=mm overcommit=never init=/bin/bench -- quick hz=1");
        assert_eq!(
            c,
            Cmdline {
                hz: 250,
                randomize: false,
                overcommit: "never",
                init: "/bin/bench",
                init_args: "quick hz=1",
                test: Some("mm")
            }
        );
        let d = Cmdline::parse("hz=0 hz=abc overcommit=maybe init=relative");
        assert_eq!(d.hz, 100);
        assert_eq!(d.overcommit, "guess");
        assert_eq!(d.init, "/bin/init");
        assert_eq!(d.init_args, "");
    }
}
