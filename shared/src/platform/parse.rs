//! DTB → [`Platform`], on `fdt-rs`. (Being written.)
use super::*;

pub(super) fn parse(dtb: &[u8]) -> Result<Platform, DtbError> {
    if dtb.is_empty() {
        return Err(DtbError::Missing);
    }
    Err(DtbError::Malformed("parser not written yet"))
}
