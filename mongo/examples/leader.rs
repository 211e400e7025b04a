//! A service instance that campaigns for leadership of an application and does leader-only work
//! under its tenure. Run two or three of them against one server and stop the leader (Ctrl-C) to
//! watch another take over once the old lease expires (leadership leases run for twice the claim
//! duration, so allow about 20 s of global time here).
//!
//! ```sh
//! scripts/substrate start secantus
//! cargo run -p tenure-mongo --example leader -- mongodb://127.0.0.1:27117/?directConnection=true web-0
//! cargo run -p tenure-mongo --example leader -- mongodb://127.0.0.1:27117/?directConnection=true web-1
//! ```

use std::time::Duration;
use tenure_mongo::{ClockUpdater, Error, Leadership, Substrate};

#[tokio::main]
async fn main() -> Result<(), Error> {
    let mut args = std::env::args().skip(1);
    let (Some(uri), unit) = (args.next(), args.next()) else {
        eprintln!("usage: leader URI [UNIT]   (UNIT defaults to a random id)");
        std::process::exit(64);
    };
    let unit = unit.unwrap_or_else(Leadership::random_unit);
    let substrate = Substrate::builder(uri)
        .database("tenure_example")
        .connect()
        .await?;
    // Leases are timed in global time: every instance also keeps the clock ticking.
    let clock = ClockUpdater::builder().spawn(&substrate)?;
    let leadership = Leadership::builder("web", &unit)
        .claim_duration(Duration::from_secs(10))
        .build(&substrate)?;
    println!("{unit}: campaigning for leadership of \"web\"");
    loop {
        let tenure = tokio::select! {
            t = leadership.wait_leader() => t?,
            _ = tokio::signal::ctrl_c() => break,
        };
        println!("{unit}: leading");
        // Leader-only work goes here, stopped the moment the tenure is cancelled.
        tokio::select! {
            () = tenure.cancelled() => println!("{unit}: no longer guaranteed to lead; stopped leader work"),
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("{unit}: shutting down (the lease expires on its own; another unit takes over then)");
    leadership.shutdown().await;
    clock.shutdown().await;
    Ok(())
}
