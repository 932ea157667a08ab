"""Sorted-set commands with django-redis's signatures, on our client layer and policy.

Members are encoded as django-redis's sorted-set mixin encoded them through ``RedisKitClient``
(``allow_int=False``: an int member is its ASCII digits, never a bare int a score could be confused
with), so existing sorted sets read back unchanged. Scores are plain numbers, never encoded.

Members of equal score are ordered by Redis by their stored bytes, which are codec bytes (header,
signature): that order is stable but not the order of the decoded values.

Each command has its async twin (``azadd``...), written once with it (``cache/twins.py``).
"""

from __future__ import annotations

from typing import Any

from django_rediskit.cache.base import MISSING, CacheCore, no_items
from django_rediskit.cache.steps import Call, Op
from django_rediskit.cache.twins import twin


def _no_zadd(arguments: dict[str, Any]) -> int | None:
    """``zadd(incr=True)`` answers the new score (None when not added), otherwise a count."""
    return None if arguments["incr"] else 0


def _no_pop(arguments: dict[str, Any]) -> list[Any] | None:
    return None if arguments["count"] is None else []


class SortedSetCommands(CacheCore):
    def _member(self, value: Any) -> Any:
        return self.client.encode(value, allow_int=False)

    def _ranked(self, raw: Any, withscores: bool) -> list[Any]:
        """Decoded members (or (member, score) pairs); undecodable members are left out."""
        if withscores:
            pairs = ((self._decoded(member), score) for member, score in raw)
            return [(member, score) for member, score in pairs if member is not MISSING]
        return self._decoded_items(raw)

    def _popped(
        self, raw: Any, count: int | None
    ) -> list[tuple[Any, float]] | tuple[Any, float] | None:
        decoded = self._ranked(raw or [], withscores=True)
        if count is None:
            return decoded[0] if decoded else None
        return decoded

    @twin(miss=_no_zadd)
    def zadd(
        self,
        key: Any,
        mapping: dict[Any, float],
        nx: bool = False,
        xx: bool = False,
        ch: bool = False,
        incr: bool = False,
        gt: bool = False,
        lt: bool = False,
        version: int | None = None,
        client: Any = None,
    ) -> Op[int | float | None]:
        encoded = {self._member(member): score for member, score in mapping.items()}
        full = self.make_and_validate_key(key, version)
        flags = {"nx": nx, "xx": xx, "ch": ch, "incr": incr, "gt": gt, "lt": lt}
        answer: int | float | None = yield Call("zadd", (full, encoded), flags, write=True)
        return answer

    azadd = zadd.asynchronous

    @twin(miss=0)
    def zcard(self, key: Any, version: int | None = None, client: Any = None) -> Op[int]:
        return int((yield Call("zcard", (self.make_and_validate_key(key, version),))))

    azcard = zcard.asynchronous

    @twin(miss=0)
    def zcount(
        self,
        key: Any,
        min: float | str,
        max: float | str,
        version: int | None = None,
        client: Any = None,
    ) -> Op[int]:
        full = self.make_and_validate_key(key, version)
        return int((yield Call("zcount", (full, min, max))))

    azcount = zcount.asynchronous

    @twin()
    def zincrby(
        self,
        key: Any,
        amount: float,
        value: Any,
        version: int | None = None,
        client: Any = None,
    ) -> Op[float | None]:
        full = self.make_and_validate_key(key, version)
        score: float | None = yield Call("zincrby", (full, amount, self._member(value)), write=True)
        return score

    azincrby = zincrby.asynchronous

    @twin(miss=_no_pop)
    def zpopmax(
        self,
        key: Any,
        count: int | None = None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[list[tuple[Any, float]] | tuple[Any, float] | None]:
        full = self.make_and_validate_key(key, version)
        return self._popped((yield Call("zpopmax", (full, count), write=True)), count)

    azpopmax = zpopmax.asynchronous

    @twin(miss=_no_pop)
    def zpopmin(
        self,
        key: Any,
        count: int | None = None,
        version: int | None = None,
        client: Any = None,
    ) -> Op[list[tuple[Any, float]] | tuple[Any, float] | None]:
        full = self.make_and_validate_key(key, version)
        return self._popped((yield Call("zpopmin", (full, count), write=True)), count)

    azpopmin = zpopmin.asynchronous

    def _range(
        self,
        key: Any,
        start: int,
        end: int,
        desc: bool,
        withscores: bool,
        score_cast_func: type,
        version: int | None,
    ) -> Op[list[Any] | list[tuple[Any, float]]]:
        full = self.make_and_validate_key(key, version)
        options = {"desc": desc, "withscores": withscores, "score_cast_func": score_cast_func}
        return self._ranked((yield Call("zrange", (full, start, end), options)), withscores)

    @twin(miss=no_items)
    def zrange(
        self,
        key: Any,
        start: int,
        end: int,
        desc: bool = False,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
        client: Any = None,
    ) -> Op[list[Any] | list[tuple[Any, float]]]:
        return (yield from self._range(key, start, end, desc, withscores, score_cast_func, version))

    azrange = zrange.asynchronous

    @twin(miss=no_items)
    def zrangebyscore(
        self,
        key: Any,
        min: float | str,
        max: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
        client: Any = None,
    ) -> Op[list[Any] | list[tuple[Any, float]]]:
        return (
            yield from self._by_score(
                "zrangebyscore", key, min, max, start, num, withscores, score_cast_func, version
            )
        )

    azrangebyscore = zrangebyscore.asynchronous

    def _by_score(
        self,
        command: str,
        key: Any,
        first: float | str,
        last: float | str,
        start: int | None,
        num: int | None,
        withscores: bool,
        score_cast_func: type,
        version: int | None,
    ) -> Op[list[Any] | list[tuple[Any, float]]]:
        """ZRANGEBYSCORE or ZREVRANGEBYSCORE (``first``/``last`` in the command's own order)."""
        full = self.make_and_validate_key(key, version)
        options = {
            "start": start,
            "num": num,
            "withscores": withscores,
            "score_cast_func": score_cast_func,
        }
        return self._ranked((yield Call(command, (full, first, last), options)), withscores)

    @twin()
    def zrank(
        self,
        key: Any,
        value: Any,
        withscore: bool = False,
        version: int | None = None,
        client: Any = None,
    ) -> Op[int | list[Any] | None]:
        """The rank, or ``[rank, score]`` with ``withscore`` (Redis 7.2+); None if absent."""
        full = self.make_and_validate_key(key, version)
        member = self._member(value)
        rank: int | list[Any] | None = yield Call("zrank", (full, member), {"withscore": withscore})
        return rank

    azrank = zrank.asynchronous

    @twin(miss=0)
    def zrem(
        self, key: Any, *values: Any, version: int | None = None, client: Any = None
    ) -> Op[int]:
        members = [self._member(value) for value in values]
        full = self.make_and_validate_key(key, version)
        return int((yield Call("zrem", (full, *members), write=True)))

    azrem = zrem.asynchronous

    @twin(miss=0)
    def zremrangebyscore(
        self,
        key: Any,
        min: float | str,
        max: float | str,
        version: int | None = None,
        client: Any = None,
    ) -> Op[int]:
        full = self.make_and_validate_key(key, version)
        return int((yield Call("zremrangebyscore", (full, min, max), write=True)))

    azremrangebyscore = zremrangebyscore.asynchronous

    @twin(miss=no_items)
    def zrevrange(
        self,
        key: Any,
        start: int,
        end: int,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
        client: Any = None,
    ) -> Op[list[Any] | list[tuple[Any, float]]]:
        return (yield from self._range(key, start, end, True, withscores, score_cast_func, version))

    azrevrange = zrevrange.asynchronous

    @twin(miss=no_items)
    def zrevrangebyscore(
        self,
        key: Any,
        max: float | str,
        min: float | str,
        start: int | None = None,
        num: int | None = None,
        withscores: bool = False,
        score_cast_func: type = float,
        version: int | None = None,
        client: Any = None,
    ) -> Op[list[Any] | list[tuple[Any, float]]]:
        return (
            yield from self._by_score(
                "zrevrangebyscore", key, max, min, start, num, withscores, score_cast_func, version
            )
        )

    azrevrangebyscore = zrevrangebyscore.asynchronous

    @twin()
    def zscore(
        self, key: Any, value: Any, version: int | None = None, client: Any = None
    ) -> Op[float | None]:
        full = self.make_and_validate_key(key, version)
        score: float | None = yield Call("zscore", (full, self._member(value)))
        return score

    azscore = zscore.asynchronous
