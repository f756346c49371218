from . import update

update()
