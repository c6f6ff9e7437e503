//! placeholder
use crate::config::Config;
use crate::deliver::route::Router;
pub fn run(_config: Config, _router: Router) -> std::io::Result<()> {
    todo!()
}
