"""The peer for the comparison: paytechuz's Payme webhook in FastAPI with SQLAlchemy on SQLite, set up as its
README's "FastAPI Integration" says (installed only with the [bench] extra).

    python -m bench.paytechuz_server --port 8300 --orders 1000 --db /tmp/paytechuz.db
"""

from __future__ import annotations

import argparse
from datetime import UTC, datetime
from pathlib import Path

import uvicorn
from fastapi import Depends, FastAPI, Request
from paytechuz.integrations.fastapi import PaymeWebhookHandler, run_migrations
from sqlalchemy import Column, DateTime, Integer, Numeric, String, create_engine
from sqlalchemy.orm import Session, declarative_base, sessionmaker

MERCHANT_ID = "5e730e8e0b852a417aa49ceb"
MERCHANT_KEY = "bench-payme-key"
PRICE_SUM = 35000
Base = declarative_base()


class Order(Base):  # type: ignore[misc, valid-type]
    __tablename__ = "orders"
    id = Column(Integer, primary_key=True, index=True)
    product_name = Column(String, index=True)
    amount = Column(Numeric(12, 2))
    status = Column(String, default="pending")
    created_at = Column(DateTime, default=lambda: datetime.now(UTC))


class BenchPaymeHandler(PaymeWebhookHandler):  # type: ignore[misc]
    def successfully_payment(self, params, transaction):  # type: ignore[no-untyped-def]
        order = self.db.query(Order).filter(Order.id == transaction.account_id).first()
        order.status = "paid"
        self.db.commit()

    def cancelled_payment(self, params, transaction):  # type: ignore[no-untyped-def]
        order = self.db.query(Order).filter(Order.id == transaction.account_id).first()
        order.status = "cancelled"
        self.db.commit()


def build(db_path: Path, orders: int) -> FastAPI:
    db_path.unlink(missing_ok=True)
    engine = create_engine(f"sqlite:///{db_path}", connect_args={"check_same_thread": False})
    Base.metadata.create_all(bind=engine)
    run_migrations(engine)
    sessions = sessionmaker(autocommit=False, autoflush=False, bind=engine)
    with sessions() as seeding:
        seeding.add_all(Order(id=n, product_name="month", amount=PRICE_SUM) for n in range(1, orders + 1))
        seeding.commit()

    def get_db():  # type: ignore[no-untyped-def]
        db = sessions()
        try:
            yield db
        finally:
            db.close()

    app = FastAPI()

    @app.post("/payments/payme/webhook")
    async def payme_webhook(request: Request, db: Session = Depends(get_db)):  # type: ignore[no-untyped-def]
        handler = BenchPaymeHandler(db=db, payme_id=MERCHANT_ID, payme_key=MERCHANT_KEY, account_model=Order,
                                    account_field="id", amount_field="amount")
        return await handler.handle_webhook(request)

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--orders", type=int, default=1000)
    parser.add_argument("--db", type=Path, default=Path("/tmp/paytechuz-bench.db"))
    args = parser.parse_args()
    app = build(args.db, args.orders)
    print("ready", flush=True)
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
